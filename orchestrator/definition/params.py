"""Run parameters: checking submitted values against a workflow's declared ``params``."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from orchestrator.definition.models import Param, ParamType
from orchestrator.errors import InvalidParams

_JSON_TYPES: dict[ParamType, tuple[type, ...]] = {
    ParamType.STRING: (str,),
    ParamType.INTEGER: (int,),
    ParamType.NUMBER: (int, float),
    ParamType.BOOLEAN: (bool,),
    ParamType.ARRAY: (list, tuple),
    ParamType.OBJECT: (dict,),
}
MAX_DEPTH = 64
"""How deep lists and objects in a param value may nest (as in workflow files): run records are
read back by JSON and pydantic serializers that give up on much deeper values."""


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
    if (problem := json_problem(value)) is not None:
        return f"param {name!r} must be JSON: {problem}"
    if spec.minimum is not None and isinstance(value, int | float) and value < spec.minimum:
        return f"param {name!r} must be >= {spec.minimum:g}, got {value}"
    if spec.maximum is not None and isinstance(value, int | float) and value > spec.maximum:
        return f"param {name!r} must be <= {spec.maximum:g}, got {value}"
    if spec.enum is not None and value not in spec.enum:
        return f"param {name!r} must be one of {json.dumps(list(spec.enum))}, got {_short(value)}"
    return None


def json_problem(value: Any) -> str | None:
    """What keeps ``value`` from being plain JSON data, or None when it is JSON.

    JSON has no NaN or infinity, no keys other than strings, and no sets, bytes or objects;
    ``json.dumps`` would write some of these anyway (``NaN``, ``{"1": ...}``) or fail later,
    when the run is already half recorded. Text must be UTF-8: a lone surrogate (what Python
    makes of a file name that is not UTF-8) is written by ``json.dumps`` but no reader of the run
    record can show it. Nesting is limited to :data:`MAX_DEPTH` levels.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, list | tuple | dict):
            if depth >= MAX_DEPTH:
                return f"lists and objects nest deeper than {MAX_DEPTH} levels"
            if isinstance(item, dict):
                if (problem := _keys_problem(item)) is not None:
                    return problem
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)
        elif (problem := _scalar_problem(item)) is not None:
            return problem
    return None


def _scalar_problem(item: Any) -> str | None:
    if item is None or isinstance(item, bool):
        return None
    if isinstance(item, str):
        return None if _is_utf8(item) else f"text {_short(item)} is not UTF-8 ({_SURROGATE})"
    if isinstance(item, int):
        # 2**13288 > 10**4000; int() reads back 4300 digits at most
        return "an integer of more than 4000 digits" if abs(item).bit_length() > 13_288 else None
    if isinstance(item, float):
        return None if math.isfinite(item) else f"{json.dumps(item)} is not a JSON number; give a finite number"
    return f"a value of type {type(item).__name__} is not JSON; use strings, numbers, booleans, null, lists and objects"


def _keys_problem(item: dict[Any, Any]) -> str | None:
    if bad := [key for key in item if not isinstance(key, str)]:
        return f"object keys are strings, not {type_name(bad[0])} {bad[0]!r}"
    if bad := [key for key in item if not _is_utf8(key)]:
        return f"object key {_short(bad[0])} is not UTF-8 ({_SURROGATE})"
    return None


_SURROGATE = "it holds a lone surrogate, as a file name that is not UTF-8 does"


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def resolve_params(specs: Mapping[str, Param], given: Mapping[str, Any]) -> dict[str, Any]:
    """Apply defaults and check types; every problem is reported at once.

    Raises:
        InvalidParams: unknown, missing or mistyped params, each named.
    """
    problems, resolved = _resolve(specs, given)
    if problems:
        raise InvalidParams(problems)
    return resolved


def _resolve(
    specs: Mapping[str, Param], given: Mapping[str, Any], unreadable: frozenset[str] = frozenset()
) -> tuple[list[str], dict[str, Any]]:
    """The problems of ``given`` and the params with defaults applied; ``unreadable`` params are skipped."""
    if not isinstance(given, Mapping):
        return [f"params must be an object of names to values, not {type_name(given)}"], {}
    problems: list[str] = []
    for name in given:
        if name not in specs:
            known = ", ".join(sorted(specs)) or "none"
            problems.append(f"unknown param {name!r} (declared: {known})")
    resolved: dict[str, Any] = {}
    for name, spec in specs.items():
        if name in unreadable:
            continue
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
    return problems, resolved


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
        return json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):  # RecursionError: [[[[... deeper than the decoder goes
        if spec is None:
            return text
        raise InvalidParams([f"param {name!r} must be {spec.type.value}, got {_abbreviate(text)}"]) from None


def coerce_all(specs: Mapping[str, Param], pairs: Mapping[str, str]) -> dict[str, Any]:
    """:func:`coerce` each command-line value, then :func:`resolve_params`; every problem at once.

    Returns:
        The coerced values (defaults are applied when the run is submitted).

    Raises:
        InvalidParams: values that do not parse as their declared type, and unknown, missing or
            mistyped params, each named.
    """
    problems: list[str] = []
    values: dict[str, Any] = {}
    for name, text in pairs.items():
        try:
            values[name] = coerce(name, specs.get(name), text)
        except InvalidParams as exc:
            problems.extend(exc.problems)
    problems += _resolve(specs, values, frozenset(pairs) - frozenset(values))[0]
    if problems:
        raise InvalidParams(problems)
    return values


def _refuse_constant(word: str) -> Any:
    # json.loads reads NaN, Infinity and -Infinity, which are not JSON and no run could store.
    raise ValueError(f"{word} is not a JSON value")


def _abbreviate(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _short(value: Any) -> str:
    try:
        text = json.dumps(value, default=str)
    except (ValueError, RecursionError):  # NaN is written, but circular or too deep values are not
        text = type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def params_schema(specs: Mapping[str, Param]) -> dict[str, Any]:
    """The declared params as a JSON Schema object (what the API publishes for a workflow)."""
    properties: dict[str, Any] = {}
    for name, spec in specs.items():
        schema: dict[str, Any] = {"type": spec.type.value}
        if not spec.required:
            schema["default"] = spec.default
        for key in ("minimum", "maximum", "description"):
            if (value := getattr(spec, key)) is not None:
                schema[key] = value
        if spec.enum is not None:
            schema["enum"] = list(spec.enum)
        properties[name] = schema
    required = [name for name, spec in specs.items() if spec.required]
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
