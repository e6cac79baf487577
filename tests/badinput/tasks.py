"""Tasks that return what a step must never pass on: values that are not JSON, or not storable.

Workers import this module through ``ORCH_TASK_MODULES`` (see ``conftest.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from celery import shared_task


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def _circular() -> dict[str, Any]:
    value: dict[str, Any] = {}
    value["self"] = value
    return value


VALUES: dict[str, Callable[[], Any]] = {
    "set": lambda: {1, 2, 3},
    "object": object,
    "bytes": lambda: b"\x89PNG",
    "generator": lambda: (i for i in range(3)),
    "exception": lambda: ValueError("returned, not raised"),
    "tuple-key": lambda: {(1, 2): "pair"},
    "circular": _circular,
    "huge-int": lambda: 10**5000,
    "nan": lambda: math.nan,
    "infinity-in-a-list": lambda: [1.0, math.inf],
    "nested-300": lambda: _nested(300),
    "nested-100000": lambda: _nested(100_000),
    "dict": lambda: {"count": 3},
    "text": lambda: "not a list",
    "null": lambda: None,
}


@shared_task(name="bad.returns")
def returns(kind: str) -> Any:
    """Return the value called ``kind`` in :data:`VALUES`."""
    return VALUES[kind]()


@shared_task(name="bad.echo")
def echo(**fields: Any) -> dict[str, Any]:
    """Return the arguments as received: what references rendered, nothing evaluated."""
    return fields
