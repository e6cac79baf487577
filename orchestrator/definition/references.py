"""``${...}`` references: the only way data flows between params, steps and tasks.

A reference names a value, it never evaluates code::

    ${params.limit}            a run parameter
    ${steps.fetch.output}      a step's output, with ``.field`` / ``[0]`` paths into it
    ${steps.fetch.status}      a step's final status
    ${item}                    the current element inside ``for_each``
    ${run.id}, ${run.date}     the run's id and date (YYYY-MM-DD: a schedule's tick in its time zone, else UTC)
    ${event.record.id}         in a ``webhook:`` section, a field of the delivery's JSON body
    ${check.output.percent}    in a ``sensor:`` section, the check task's output

A string that is exactly one reference keeps the referenced value's JSON type; a reference inside
a longer string is formatted into it (JSON for lists and objects). ``$${`` writes a literal ``${``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from orchestrator.errors import ReferenceSyntaxError

Root = Literal["params", "steps", "item", "run", "event", "check"]
PathPart = str | int

_IDENT = r"[A-Za-z_][A-Za-z0-9_-]*"
_SEGMENT = re.compile(rf"\.({_IDENT})|\[([0-9]+)\]")
_HEAD = re.compile(rf"\s*({_IDENT})")
RUN_FIELDS = ("id", "date", "workflow")
MAX_INDEX_DIGITS = 18
STEP_FIELDS = ("output", "status")


@dataclass(frozen=True)
class Reference:
    """One parsed reference.

    Attributes:
        root: ``params``, ``steps``, ``item``, ``run``, ``event`` (webhooks) or ``check`` (sensors).
        name: The parameter, step or run field name (None for ``item``).
        field: For ``steps`` references, ``output`` or ``status``.
        path: Fields and list indexes into the value.
        text: The reference as written, without ``${}``.
    """

    root: Root
    name: str | None
    field: str | None
    path: tuple[PathPart, ...]
    text: str

    def __str__(self) -> str:
        return "${" + self.text + "}"


@dataclass(frozen=True)
class Template:
    """A string split into literal text and references."""

    parts: tuple[str | Reference, ...]

    @property
    def single(self) -> Reference | None:
        """The reference if the string is exactly one reference (its type is kept), else None."""
        if len(self.parts) == 1 and isinstance(self.parts[0], Reference):
            return self.parts[0]
        return None

    @property
    def references(self) -> tuple[Reference, ...]:
        return tuple(p for p in self.parts if isinstance(p, Reference))


def parse_reference(text: str) -> Reference:
    """Parse the inside of ``${...}``.

    Raises:
        ReferenceSyntaxError: with a message naming what is wrong.
    """
    stripped = text.strip()
    head = _HEAD.match(stripped)
    if not head:
        raise ReferenceSyntaxError(f"empty or malformed reference ${{{_cut(text)}}}")
    segments: list[PathPart] = [head.group(1)]
    pos = head.end()
    while pos < len(stripped):
        seg = _SEGMENT.match(stripped, pos)
        if not seg:
            raise ReferenceSyntaxError(
                f"unexpected {_shorten(stripped[pos:])!r} in ${{{_cut(text)}}}; use .field or [index] paths"
            )
        if seg.group(1) is None and len(seg.group(2)) > MAX_INDEX_DIGITS:
            # int() would refuse it with a bare ValueError past 4300 digits; no list is that long anyway.
            raise ReferenceSyntaxError(
                f"${{{_cut(text)}}}: a list index too long to read; an index is a small number such as [0]"
            )
        segments.append(seg.group(1) if seg.group(1) is not None else int(seg.group(2)))
        pos = seg.end()
    return _classify(segments, stripped)


def _shorten(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters for a message: a reference may be as long as its file."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _cut(text: str, limit: int = 80) -> str:
    """:func:`_shorten`, with line breaks and other unprintable characters escaped as ``repr`` does:
    for text shown unquoted, since a problem is one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in _shorten(text, limit))


def _classify(segments: list[PathPart], text: str) -> Reference:
    root, rest = segments[0], segments[1:]
    shown = _cut(text)
    if root == "item":
        return Reference("item", None, None, tuple(rest), text)
    if root == "params":
        if not rest or not isinstance(rest[0], str):
            raise ReferenceSyntaxError(f"${{{shown}}} must name a parameter: ${{params.NAME}}")
        return Reference("params", rest[0], None, tuple(rest[1:]), text)
    if root == "run":
        if len(rest) != 1 or rest[0] not in RUN_FIELDS:
            raise ReferenceSyntaxError(f"${{{shown}}}: run references are {', '.join(RUN_FIELDS)}")
        return Reference("run", str(rest[0]), None, (), text)
    if root == "event":
        return Reference("event", None, None, tuple(rest), text)
    if root == "check":
        if not rest or rest[0] != "output":
            raise ReferenceSyntaxError(f"${{{shown}}} must be ${{check.output}}, with an optional .path")
        return Reference("check", None, "output", tuple(rest[1:]), text)
    if root == "steps":
        if len(rest) < 2 or not isinstance(rest[0], str) or rest[1] not in STEP_FIELDS:
            raise ReferenceSyntaxError(
                f"${{{shown}}} must be ${{steps.NAME.output}} (with an optional .path) or ${{steps.NAME.status}}"
            )
        if rest[1] == "status" and len(rest) > 2:
            raise ReferenceSyntaxError(f"${{{shown}}}: a status has no fields")
        return Reference("steps", rest[0], str(rest[1]), tuple(rest[2:]), text)
    raise ReferenceSyntaxError(
        f"unknown reference root {_shorten(str(root))!r} in ${{{shown}}}; use params, steps, item or run"
    )


def parse_template(value: str) -> Template:
    """Split a string into literal text and references.

    Raises:
        ReferenceSyntaxError: an unclosed ``${`` or a malformed reference.
    """
    parts: list[str | Reference] = []
    literal: list[str] = []
    i = 0
    while i < len(value):
        if value.startswith("$${", i):
            literal.append("${")
            i += 3
        elif value.startswith("${", i):
            end = value.find("}", i + 2)
            if end < 0:
                raise ReferenceSyntaxError(f"unclosed '${{' at character {i + 1} of {_shorten(value)!r}")
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(parse_reference(value[i + 2 : end]))
            i = end + 1
        else:
            literal.append(value[i])
            i += 1
    if literal:
        parts.append("".join(literal))
    return Template(tuple(parts))


def iter_strings(value: Any, where: tuple[PathPart, ...] = ()) -> Iterator[tuple[tuple[PathPart, ...], str]]:
    """Yield ``(path, string)`` for every string inside a JSON-like value (keys excluded)."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from iter_strings(item, (*where, key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from iter_strings(item, (*where, index))


def find_references(value: Any) -> Iterator[tuple[tuple[PathPart, ...], Reference]]:
    """Yield every reference inside a JSON-like value with the path of the string holding it.

    Raises:
        ReferenceSyntaxError: on the first malformed template.
    """
    for where, text in iter_strings(value):
        for ref in parse_template(text).references:
            yield where, ref


def follow(value: Any, path: tuple[PathPart, ...], ref: Reference) -> Any:
    """Walk ``path`` into ``value``.

    Raises:
        LookupError: a field or index that is not there, naming the reference.
    """
    for part in path:
        in_list = isinstance(part, int) and isinstance(value, list) and -len(value) <= part < len(value)
        in_dict = isinstance(part, str) and isinstance(value, dict) and part in value
        if not (in_list or in_dict):
            raise LookupError(f"{ref} has no {part!r} (the value there is {_describe(value)})")
        value = value[part]
    return value


def _describe(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def render(value: Any, resolve: Callable[[Reference], Any]) -> Any:
    """Substitute references in a JSON-like value.

    Args:
        value: Strings, numbers, lists and dicts, as in a step's ``args``.
        resolve: Returns the value a reference names (already walked along its path).

    Returns:
        A new value: single references keep their type, embedded ones are formatted.
    """
    if isinstance(value, str):
        if "${" not in value:
            return value
        template = parse_template(value)
        if template.single is not None:
            return resolve(template.single)
        return "".join(p if isinstance(p, str) else _format(resolve(p)) for p in template.parts)
    if isinstance(value, dict):
        return {key: render(item, resolve) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [render(item, resolve) for item in value]
    return value


def _format(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))
