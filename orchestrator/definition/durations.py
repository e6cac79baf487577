"""Durations as users write them (``500ms``, ``30s``, ``5m``, ``2h``, ``1d``, seconds), and moments."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

_UNITS = {"ms": Decimal("0.001"), "s": Decimal(1), "m": Decimal(60), "h": Decimal(3600), "d": Decimal(86400)}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$", re.ASCII)
MAX_SECONDS = 366 * 86400.0
_FORMS = "write e.g. 500ms, 30s, 5m, 2h or a number of seconds"


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_duration(value: object) -> float:
    """Return a duration in seconds.

    Args:
        value: A non-negative number of seconds, or a string such as ``"90s"`` or ``"1.5h"``.

    Raises:
        ValueError: with a message that shows the accepted forms.
    """
    if isinstance(value, bool):
        raise ValueError(f"{_shown(value)} is not a duration; {_FORMS}")
    try:
        if isinstance(value, int | float):
            seconds = float(value)
        elif isinstance(value, str) and (match := _PATTERN.match(value)):
            # Decimal keeps "9ms" exactly 0.009 and rejects nothing a float would accept.
            seconds = float(Decimal(match.group(1)) * _UNITS[match.group(2) or "s"])
        else:
            raise ValueError(f"{_shown(value)} is not a duration; {_FORMS}")
    except (OverflowError, InvalidOperation):
        raise ValueError(f"{_shown(value)} is longer than a year; durations are capped at 366d") from None
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"{_shown(value)} is not a duration; it must be a non-negative number of seconds")
    if seconds > MAX_SECONDS:  # infinity too: "999...9d" is a duration, only far too long
        raise ValueError(f"{_shown(value)} is longer than a year; durations are capped at 366d")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact spelling of ``seconds`` (``0.5`` -> ``500ms``, ``120`` -> ``2m``)."""
    exact = Decimal(repr(float(seconds)))
    if exact == 0:
        return "0s"
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if exact >= size and exact % size == 0:
            return f"{int(exact // size)}{unit}"
    spellings = [f"{exact.normalize():f}s"]
    millis = exact * 1000
    if millis == millis.to_integral_value():
        spellings.append(f"{int(millis)}ms")
    return min(spellings, key=len)


def parse_moment(value: str, now: float) -> float:
    """A moment as epoch seconds: an ISO-8601 time (UTC unless it says) or a duration ago (``1h``).

    Raises:
        ValueError: neither, with the forms accepted.
    """
    try:
        return now - parse_duration(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{_shown(value)} is not a moment; write an ISO-8601 time such as 2026-01-31T12:00:00Z, or a "
            "duration ago such as 1h"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


class InvalidMoment(ValueError):
    """A ``since`` or ``until`` that is no moment; ``name`` says which (callers word the message)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def parse_window(since: str | None, until: str | None, now: float) -> tuple[float | None, float | None]:
    """The ``since`` and ``until`` of a list of runs as epoch seconds (None where not given).

    Raises:
        InvalidMoment: one is neither an ISO-8601 time nor a duration ago.
    """
    moments: dict[str, float | None] = {}
    for name, text in (("since", since), ("until", until)):
        try:
            moments[name] = parse_moment(text, now) if text is not None else None
        except ValueError as exc:
            raise InvalidMoment(name, str(exc)) from None
    return moments["since"], moments["until"]
