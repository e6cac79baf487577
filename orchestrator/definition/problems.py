"""Turning pydantic validation errors into located, actionable :class:`Problem` messages."""

from __future__ import annotations

import difflib
import json
import re
import types
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from orchestrator.definition.models import STEP_NAME, TASK_NAME, WORKFLOW_ID, Workflow
from orchestrator.definition.params import type_name
from orchestrator.definition.source import SourceMap
from orchestrator.errors import Problem

Loc = tuple[str | int, ...]

_PATTERN_HINTS = {
    WORKFLOW_ID: "a workflow id is lowercase letters, digits, '.', '_' and '-', starting with a letter or digit",
    STEP_NAME: "a name is letters, digits, '_' and '-', starting with a letter or '_'",
    TASK_NAME: "a task name is a dotted Celery task name such as 'content.fetch'",
}

# What a value of the wrong type should have been, by pydantic error type.
_EXPECTED_BY_TYPE = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "tuple_type": "a list",
    "list_type": "a list",
}

# A more precise expectation for some fields, by location pattern (see :func:`_pattern`).
_EXPECTED_AT = {
    "steps": "a mapping of step names to steps",
    "params": "a mapping of param names to declarations such as {type: string}",
    "schedule": "a list of entries such as {cron: '0 1 * * *'}",
    "defaults": "a mapping of policy fields such as {queue: default, timeout: 5m}",
    "steps.*": "a mapping with at least `task:`",
    "params.*": "a mapping such as {type: integer, default: 10}",
    "steps.*.needs": "a list of step names",
    "steps.*.args": "a mapping of argument names to values",
    "steps.*.for_each": "one reference to a list, such as '${steps.NAME.output}' or '${params.NAME}' "
    "(for fixed items, declare an array param with them as its default)",
    "steps.*.task": "a Celery task name such as 'content.fetch'",
    "schedule.*.params": "a mapping of param names to values",
    "on": "a list of error type names such as [ConnectionError, TimeoutError]",
}

# Said after a bound that is not met, by field name.
_BOUND_HINTS = {"max_attempts": " (it counts the first attempt: 1 means no retry)"}


def suggest(word: str, candidates: Iterable[str], *, cutoff: float = 0.6) -> str:
    """``"; did you mean 'x'?"`` for the closest candidate, or an empty string.

    Args:
        word: What the user wrote.
        candidates: What they could have meant.
        cutoff: The least similarity (0 to 1) worth suggesting; raise it for names sharing long
            prefixes, such as dotted task names, where everything looks alike.
    """
    match = difflib.get_close_matches(word, list(candidates), n=1, cutoff=cutoff)
    return f"; did you mean {match[0]!r}{odd_characters(match[0])}?" if match else ""


def dotted(loc: Sequence[str | int]) -> str:
    """``("steps", "fetch", "needs", 0)`` -> ``steps.fetch.needs[0]``.

    A key that is not a plain name is quoted (``args['a b']``): a key may hold anything, a line
    break too, and a problem is one line.
    """
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not _PLAIN_KEY.fullmatch(part) or len(part) > 80:
            text += f"[{_short(part, 80)}]"
        else:
            text += f".{part}" if text else part
    return text


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)


def odd_characters(text: str) -> str:
    """`` (it contains U+200B ZERO WIDTH SPACE)`` for invisible or non-ASCII characters, else ``""``.

    Such characters look like ordinary letters (or like nothing) when the file is read, so naming
    them is the only way a user can see why ``fetch`` is not ``fetch``.
    """
    odd = [c for c in dict.fromkeys(text) if not (c.isascii() and c.isprintable())]
    if not odd:
        return ""
    names = ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, 'without a name')}" for c in odd[:3])
    return f" (it contains {names})"


def translate_validation_error(exc: ValidationError, source: SourceMap, prefix: Loc = ()) -> list[Problem]:
    """One problem per pydantic error, located in the source and worded for users."""
    problems = []
    for error in exc.errors(include_url=False):
        loc = (*prefix, *_clean(error["loc"]))
        message, at_key = _message(error, loc)
        problems.append(source.problem(loc, message, at_key=at_key))
    return problems


def _clean(loc: Sequence[str | int]) -> Loc:
    # pydantic adds a segment naming the union member or the key validation ("[key]"); drop them.
    return tuple(p for p in loc if not (isinstance(p, str) and (p.startswith("function-") or p == "[key]")))


def _message(error: ErrorDetails, loc: Loc) -> tuple[str, bool]:
    """The message for one pydantic error, and whether it points at the key rather than the value."""
    kind = error["type"]
    where = dotted(loc)
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if kind == "extra_forbidden":
        name = str(loc[-1])
        fields = _fields_at(loc[:-1])
        return f"{dotted(loc[:-1]) or 'workflow'}: unknown field {_short(name, 80)}{suggest(name, fields)}", True
    if kind == "missing":
        return f"{dotted(loc[:-1]) or 'workflow'}: missing required field {loc[-1]!r}", False
    if kind == "string_pattern_mismatch":
        hint = _PATTERN_HINTS.get(str(ctx.get("pattern", "")), f"it must match {ctx.get('pattern')}")
        if _is_key_error(error):
            return (
                f"{dotted(loc[:-1])}: name {_short(value, 80)} is not valid; {hint}{odd_characters(str(value))}",
                True,
            )
        return f"{where}: {_short(value, 80)} is not valid; {hint}{odd_characters(str(value))}", False
    if kind == "too_short" and loc == ("steps",):
        return "steps: a workflow needs at least one step", False
    if kind == "value_error":
        return f"{where}: {str(error['msg']).removeprefix('Value error, ')}", False
    if kind in ("enum", "literal_error"):
        expected = str(ctx.get("expected", ""))
        hint = suggest(str(value), re.findall(r"'([^']*)'", expected))
        return f"{where}: {_short(value, 80)} is not one of {expected}{hint}", False
    if kind in ("greater_than_equal", "less_than_equal"):
        bound = f"at least {ctx.get('ge')}" if kind == "greater_than_equal" else f"at most {ctx.get('le')}"
        return f"{where}: must be {bound}, got {_short(value)}{_BOUND_HINTS.get(str(loc[-1]), '')}", False
    if kind in _EXPECTED_BY_TYPE:
        return (
            f"{where}: expected {_expected(kind, loc)}, got {_type_name(value)}{_list_hint(kind, value)}",
            False,
        )
    return f"{where}: {_lower_first(error['msg'])}, got {_type_name(value)}", False


def _expected(kind: str, loc: Loc) -> str:
    return _EXPECTED_AT.get(_pattern(loc)) or _EXPECTED_AT.get(str(loc[-1]) if loc else "") or _EXPECTED_BY_TYPE[kind]


def _pattern(loc: Loc) -> str:
    """``("steps", "fetch", "needs")`` -> ``steps.*.needs``: step and param names and indexes as ``*``."""
    parts = [
        "*" if isinstance(part, int) or (i == 1 and loc[0] in ("steps", "params")) else part
        for i, part in enumerate(loc)
    ]
    return ".".join(str(part) for part in parts)


def _list_hint(kind: str, value: Any) -> str:
    # The commonest slip: `needs: fetch` for `needs: [fetch]`.
    if kind in ("tuple_type", "list_type") and isinstance(value, str) and len(value) <= 80:
        return f"; write it as a list: [{json.dumps(value)}]"
    return ""


def _short(value: Any, limit: int = 40) -> str:
    """``repr(value)``, cut to ``limit`` characters: a 2 MiB value must not make a 2 MiB message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_key_error(error: ErrorDetails) -> bool:
    return "[key]" in error["loc"]


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _type_name(value: Any) -> str:
    return type_name(value) if not isinstance(value, str) else f"string {_short(value, 80)}"


def _fields_at(loc: Loc) -> list[str]:
    """Field names of the model found by walking ``loc`` down from :class:`Workflow`."""
    current: Any = Workflow
    for part in loc:
        current = _child(current, part)
        if current is None:
            return []
    model = _unwrap(current)
    return list(model.model_fields) if _is_model(model) else []


def _child(annotation: Any, part: str | int) -> Any:
    """The annotation of ``part`` inside a value of type ``annotation``, or None if there is none."""
    annotation = _unwrap(annotation)
    if _is_model(annotation):
        info = annotation.model_fields.get(part) if isinstance(part, str) else None
        return info.annotation if info is not None else None
    origin = get_origin(annotation)
    args = [arg for arg in get_args(annotation) if arg is not Ellipsis]
    if origin is dict and args:
        return args[-1]
    if origin in (tuple, list) and isinstance(part, int) and args:
        return args[0] if len(args) == 1 or part >= len(args) else args[part]
    return None


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated[...]`` and ``X | None`` down to the type that holds fields or items."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)
