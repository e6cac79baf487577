"""Run parameters: checking submitted values against a workflow's declared ``params``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from orchestrator.definitions import Param, ParamType
from orchestrator.errors import InvalidParams

_JSON_TYPES: dict[ParamType, tuple[type, ...]] = {
    ParamType.STRING: (str,),
    ParamType.INTEGER: (int,),
    ParamType.NUMBER: (int, float),
    ParamType.BOOLEAN: (bool,),
    ParamType.ARRAY: (list,),
    ParamType.OBJECT: (dict,),
}


def type_name(value: Any) -> str:
    """The JSON type name of a value, as users see it in messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def check_value(name: str, spec: Param, value: Any) -> str | None:
    """Return a problem with ``value`` for param ``name``, or None if it is acceptable."""
    expected = _JSON_TYPES[spec.type]
    if isinstance(value, bool) and spec.type is not ParamType.BOOLEAN or not isinstance(value, expected):
        return f"param {name!r} must be {spec.type.value}, got {type_name(value)} {_short(value)}"
    if spec.minimum is not None and isinstance(value, int | float) and value < spec.minimum:
        return f"param {name!r} must be >= {spec.minimum:g}, got {value}"
    if spec.maximum is not None and isinstance(value, int | float) and value > spec.maximum:
        return f"param {name!r} must be <= {spec.maximum:g}, got {value}"
    if spec.enum is not None and value not in spec.enum:
        return f"param {name!r} must be one of {json.dumps(list(spec.enum))}, got {_short(value)}"
    return None


def resolve_params(specs: Mapping[str, Param], given: Mapping[str, Any]) -> dict[str, Any]:
    """Apply defaults and check types; every problem is reported at once.

    Raises:
        InvalidParams: unknown, missing or mistyped params, each named.
    """
    problems: list[str] = []
    for name in given:
        if name not in specs:
            known = ", ".join(sorted(specs)) or "none"
            problems.append(f"unknown param {name!r} (declared: {known})")
    resolved: dict[str, Any] = {}
    for name, spec in specs.items():
        if name in given:
            value = given[name]
        elif spec.required:
            problems.append(f"param {name!r} is required ({spec.type.value})")
            continue
        else:
            value = spec.default
        if value is None and not spec.required and name not in given:
            resolved[name] = None
            continue
        problem = check_value(name, spec, value)
        if problem:
            problems.append(problem)
        resolved[name] = value
    if problems:
        raise InvalidParams(problems)
    return resolved


def coerce(name: str, spec: Param | None, text: str) -> Any:
    """Turn a command-line ``KEY=VALUE`` value into the param's declared type.

    Strings stay as written; other types parse as JSON (``-p limit=5`` is the integer 5,
    ``-p 'ids=[1,2]'`` a list). Undeclared params parse as JSON when they can, else stay strings.

    Raises:
        InvalidParams: the text is not a value of the declared type.
    """
    if spec is not None and spec.type is ParamType.STRING:
        return text
    try:
        return json.loads(text)
    except ValueError:
        if spec is None:
            return text
        raise InvalidParams([f"param {name!r} must be {spec.type.value}, got {text!r}"]) from None


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."
