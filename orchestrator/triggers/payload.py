"""What a trigger's ``when`` and ``params`` read: fields of a JSON payload (a delivery's body, a check's output)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.definition.references import Reference, follow
from orchestrator.errors import InvalidArgument


def resolver(payload: Any, what: str) -> Callable[[Reference], Any]:
    """Resolve ``${event...}`` / ``${check.output...}`` references into ``payload``.

    Args:
        payload: The JSON value the references walk into.
        what: The start of the message (``the check's output does not fit the sensor``).

    The returned function raises :class:`InvalidArgument` naming the reference as ``field`` when
    the payload lacks what it names.
    """

    def resolve(ref: Reference) -> Any:
        try:
            return follow(payload, ref.path, ref)
        except LookupError as exc:
            raise InvalidArgument(f"{what}: {exc}", ref.text) from None

    return resolve
