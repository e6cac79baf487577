"""Workflow files (YAML or JSON) to located plain data: the document, before any model.

JSON is read by the same YAML 1.2 parser, so both formats get line numbers and the same checks.
The document is composed to nodes and converted here rather than by a YAML constructor: that is
where duplicate keys are found (all of them, not just the first), where aliases are counted so a
"billion laughs" file is refused before it expands, and where every value's position is recorded
for error messages.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.error import MarkedYAMLError, ReusedAnchorWarning, YAMLError
from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError

from orchestrator.definition.problems import dotted
from orchestrator.definition.source import Path_, SourceMap
from orchestrator.errors import InvalidWorkflow, Problem

MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_NODES = 200_000
MAX_DEPTH = 64


@dataclass
class _Converter:
    source: SourceMap
    problems: list[Problem]
    nodes: int = 0

    def convert(self, node: Node, path: Path_, depth: int = 0) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _TooLarge(node.start_mark, _TOO_MANY)
        if depth >= MAX_DEPTH and not isinstance(node, ScalarNode):
            raise _TooLarge(node.start_mark, _TOO_DEEP)
        self.source.values.setdefault(path, (node.start_mark.line + 1, node.start_mark.column + 1))
        if not isinstance(node, ScalarNode) and str(node.tag) not in _COLLECTION_TAGS:
            # `!!set`, `!!omap`, `!!python/object/apply:...`: refused, never constructed.
            self._problem(node, _unsupported_tag(str(node.tag)))
            return None
        if isinstance(node, MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, SequenceNode):
            return [self.convert(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _mapping(self, node: MappingNode, path: Path_, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        merges: list[Node] = []
        first_merge: tuple[int, int] | None = None
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                if first_merge is not None:
                    self._problem(
                        key_node,
                        f"duplicate key '<<' (first at line {first_merge[0]}); merge several mappings with one "
                        "key: `<<: [*first, *second]`",
                    )
                    continue
                first_merge = (line, col)
                merges.append(value_node)
                continue
            key = key_node.value if isinstance(key_node, ScalarNode) and key_node.tag in _STRING_TAGS else None
            if not isinstance(key, str):
                self._problem(key_node, _key_message(key_node))
                continue
            line, col = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            if key in result:
                first = self.source.keys[(*path, key)]
                at = f"line {first[0]}" if first[0] != line else f"line {first[0]}, column {first[1]}"
                self._problem(key_node, f"duplicate key {key!r} (first at {at}); remove one of them")
                continue
            self.source.keys.setdefault((*path, key), (line, col))
            result[key] = self.convert(value_node, (*path, key), depth + 1)
        # Keys written in the mapping win over merged ones wherever `<<` stands, as YAML says;
        # so merges come last and only fill in (their positions too: setdefault).
        for merge in merges:
            self._merge(result, merge, path, depth)
        return result

    def _merge(self, result: dict[str, Any], node: Node, path: Path_, depth: int) -> None:
        sources = node.value if isinstance(node, SequenceNode) else [node]
        for source in sources:
            if not isinstance(source, MappingNode):
                self._problem(source, "`<<` merges a mapping (such as *anchor) or a list of them")
                continue
            merged = self.convert(source, path, depth + 1)
            for key, value in merged.items():
                result.setdefault(key, value)

    def _scalar(self, node: Node, path: Path_) -> Any:
        assert isinstance(node, ScalarNode)
        tag = str(node.tag)
        text: str = node.value
        if tag in _STRING_TAGS:
            return text
        if tag == "tag:yaml.org,2002:null":
            return None
        if tag == "tag:yaml.org,2002:bool":
            return text.lower() in ("true", "yes", "on")
        if tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float"):
            return self._number(node, text, tag, path)
        self._problem(node, _unsupported_tag(tag))
        return None

    def _number(self, node: Node, text: str, tag: str, path: Path_) -> int | float | None:
        where = f"{dotted(path)}: " if path else ""
        try:
            value = _yaml_int(text) if tag == "tag:yaml.org,2002:int" else _yaml_float(text)
        except ValueError:  # int() refuses more than sys.get_int_max_str_digits() digits
            self._problem(
                node,
                f"{where}cannot read the number {_abbreviate(text)}; write a JSON number of at most 4300 digits",
            )
            return None
        if not math.isfinite(_as_float(value)):
            lowered = text.lower()
            if "inf" in lowered or "nan" in lowered:
                self._problem(node, f"{where}{_abbreviate(text)} is not a JSON number; write a finite number")
            else:
                self._problem(node, f"{where}{_abbreviate(text)} is too large for a number; write a finite number")
            return None
        return value

    def _problem(self, node: Node, message: str) -> None:
        line, col = node.start_mark.line + 1, node.start_mark.column + 1
        self.problems.append(Problem(self.source.file, line, col, message))


_STRING_TAGS = ("tag:yaml.org,2002:str", "tag:yaml.org,2002:timestamp")
_COLLECTION_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


def _unsupported_tag(tag: str) -> str:
    return (
        f"unsupported YAML tag {_short_tag(tag)!r}; a workflow holds plain data only: "
        "strings, numbers, booleans, null, lists and mappings"
    )


def _key_message(node: Node) -> str:
    if not isinstance(node, ScalarNode):
        return "a key must be a string, not a list or mapping"
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(node.value))
    return f"key {_abbreviate(shown)[1:-1]} must be a string; quote it: {json.dumps(node.value)[:80]}"


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org,2002:") else tag


def _abbreviate(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _yaml_int(text: str) -> int:
    """A YAML 1.2 integer: decimal, ``0x``, ``0o`` or ``0b``, with an optional sign and ``_``s.

    Raises:
        ValueError: the digits do not form a number, or there are too many of them.
    """
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-").replace("_", "").lower()
    for prefix, base in (("0x", 16), ("0o", 8), ("0b", 2)):
        if digits.startswith(prefix):
            return sign * int(digits[2:], base)
    return sign * int(digits, 10)


def _as_float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer beyond any float: no JSON reader could hold it either
        return math.inf


def _yaml_float(text: str) -> float:
    lowered = text.lower()
    if "inf" in lowered or "nan" in lowered:
        return math.nan  # .inf and .nan: not JSON numbers, whatever their sign
    return float(text.replace("_", ""))


class _TooLarge(Exception):
    """The document is too big to convert; raised at the node where the limit was crossed."""

    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(message)
        self.line, self.col = mark.line + 1, mark.column + 1


class _CountingComposer(Composer):
    """A composer that stops at the :data:`MAX_NODES` + 1st value (mapping keys not counted).

    Composing costs tens of microseconds a value in pure Python: a 2 MiB file of a million small
    values took most of a minute before the converter's own count refused it. Aliases count once
    here (they are not expanded yet); the converter still counts each of their uses.
    """

    values = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if index is not None:  # None: a mapping key, or the document's root
            self.values += 1
            if self.values > MAX_NODES:
                raise _TooLarge(self.parser.peek_event().start_mark, _TOO_MANY)
        return super().compose_node(parent, index)


def parse_document(text: str, file: str) -> tuple[Any, SourceMap, list[Problem]]:
    """Parse YAML or JSON text to plain data, a source map and the problems found on the way.

    Duplicate keys (the first value is kept), non-string keys and non-JSON values are returned as
    problems so that validation can go on and report the rest of the file too.

    Raises:
        InvalidWorkflow: the text does not parse at all, or it is too large or too deep.
    """
    source = SourceMap(file)
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise InvalidWorkflow([Problem(file, 1, 1, f"file is larger than {MAX_FILE_BYTES // 1024} KiB")])
    yaml = YAML(typ="safe", pure=True)
    yaml.allow_duplicate_keys = True
    yaml.Composer = _CountingComposer
    try:
        if _may_nest_too_deep(text) and _nests_too_deep(yaml, text):
            raise InvalidWorkflow([Problem(file, 1, 1, _TOO_DEEP)])
        with warnings.catch_warnings():
            # YAML 1.2 allows redefining an anchor (a later alias refers to the latest one).
            warnings.simplefilter("ignore", ReusedAnchorWarning)
            node = yaml.compose(text)
    except _TooLarge as exc:
        raise InvalidWorkflow([Problem(file, exc.line, exc.col, str(exc))]) from None
    except MarkedYAMLError as exc:
        raise InvalidWorkflow([_syntax_problem(exc, file)]) from None
    except ReaderError as exc:
        line, col = _position(text, exc.position)
        char = f"U+{exc.character:04X}" if isinstance(exc.character, int) else repr(exc.character)
        message = f"{_format_name(file)} text cannot hold the unprintable character {char}; remove it"
        raise InvalidWorkflow([Problem(file, line, col, message)]) from None
    except RecursionError:
        raise InvalidWorkflow([Problem(file, 1, 1, _TOO_DEEP)]) from None
    except (YAMLError, ValueError) as exc:
        raise InvalidWorkflow([Problem(file, 1, 1, f"invalid {_format_name(file)}: {exc}")]) from None
    if node is None:
        raise InvalidWorkflow([Problem(file, 1, 1, _EMPTY)])
    problems: list[Problem] = []
    converter = _Converter(source, problems)
    try:
        data = converter.convert(node, ())
    except _TooLarge as exc:
        raise InvalidWorkflow([Problem(file, exc.line, exc.col, str(exc))]) from None
    except RecursionError:
        raise InvalidWorkflow([Problem(file, 1, 1, _TOO_DEEP)]) from None
    return data, source, problems


_EMPTY = "the file is empty; a workflow needs `workflow:` and `steps:`"
_TOO_DEEP = f"the document nests deeper than {MAX_DEPTH} levels"
_TOO_MANY = (
    f"the document expands to more than {MAX_NODES} values, counting each use of an alias (*name); "
    "a workflow is far smaller: use fewer aliases"
)
# The parser's names for what it met or was in, in words a user of YAML or JSON knows.
_PARSER_WORDS = {
    "<scalar>": "a value",
    "<stream end>": "the end of the file",
    "<block end>": "the end of the indented block",
    "<block mapping start>": "an indented mapping",
    "<block sequence start>": "an indented list",
    "flow mapping": "{...}",
    "flow sequence": "[...]",
    "quoted scalar": "quoted string",
    "plain scalar": "value",
    "block mapping": "indented mapping",
    "block collection": "indented list or mapping",
}


def _may_nest_too_deep(text: str) -> bool:
    """A quick over-estimate of the nesting of ``[`` and ``{`` (brackets in strings count too).

    Composing ``[[[[...`` costs time quadratic in the depth before Python's recursion limit stops
    it, so deep flow nesting is looked for first; this check keeps ordinary files off that path.
    """
    depth = deepest = 0
    for match in _BRACKETS.finditer(text):
        depth = max(depth + (1 if match.group() in "[{" else -1), 0)
        deepest = max(deepest, depth)
    return deepest > MAX_DEPTH


def _nests_too_deep(yaml: YAML, text: str) -> bool:
    """Whether collections nest deeper than :data:`MAX_DEPTH`, from parser events (no recursion)."""
    depth = 0
    for event in yaml.parse(text):
        if isinstance(event, CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif isinstance(event, CollectionEndEvent):
            depth -= 1
    return False


_BRACKETS = re.compile(r"[\[\]{}]")


def _syntax_problem(exc: MarkedYAMLError, file: str) -> Problem:
    """Where and why the parser stopped, and where the construct it was reading began."""
    mark = exc.problem_mark or exc.context_mark
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    reason = " ".join(str(exc.problem or exc.context or "invalid syntax").split())
    reason = re.sub(r"'?(<[a-z ]+>)'?", lambda m: _PARSER_WORDS.get(m.group(1), m.group(1)), reason)
    context = re.fullmatch(r"while (?:parsing|scanning) an? ([a-z ]+)", str(exc.context or ""))
    start = exc.context_mark
    if context and exc.problem_mark and start and (start.line, start.column) != (line - 1, col - 1):
        what = _PARSER_WORDS.get(context.group(1), context.group(1))
        reason += f" (in the {what} that starts at line {start.line + 1}, column {start.column + 1})"
    if "'\\t'" in reason:
        reason += "; indent with spaces: YAML does not allow tabs there"
    return Problem(file, line, col, f"invalid {_format_name(file)}: {reason}")


def _format_name(file: str) -> str:
    return "JSON" if file.lower().endswith(".json") else "YAML"


def _position(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of a character offset."""
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1
