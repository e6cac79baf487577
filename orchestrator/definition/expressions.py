"""A step's ``when`` condition: a small boolean language over ``${...}`` references.

It is tokenized and parsed by recursive descent, never handed to ``eval``::

    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := operand (("==" | "!=" | "<" | "<=" | ">" | ">=" | "in" | "not in") operand)?
    operand    := ${reference} | number | 'string' | "string" | true | false | null
                | "[" (operand ("," operand)*)? "]" | "(" or_expr ")"

Values are JSON values: ``==`` never equates a boolean with a number, ordering needs two numbers or
two strings, ``and``/``or``/``not`` yield booleans (``and``/``or`` short-circuit), and the condition
holds when its value is truthy (null, false, 0, "", [] and {} are not).
"""

from __future__ import annotations

import json
import math
import operator
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeAlias

from orchestrator.definition.references import Reference, parse_reference
from orchestrator.errors import ExpressionError, ReferenceSyntaxError

MAX_LENGTH = 10_000
MAX_DEPTH = 100

Scalar: TypeAlias = None | bool | int | float | str
BoolOpName = typing.Literal["and", "or"]
CompareOp = typing.Literal["==", "!=", "<", "<=", ">", ">=", "in", "not in"]


@dataclass(frozen=True)
class Literal:
    """A constant: null, a boolean, a number or a string."""

    value: Scalar


@dataclass(frozen=True)
class Ref:
    """A ``${...}`` reference, resolved when the condition is evaluated."""

    reference: Reference


@dataclass(frozen=True)
class ListLit:
    """A list literal ``[a, b, ...]``."""

    items: tuple[Expression, ...]


@dataclass(frozen=True)
class Not:
    """``not operand``: the negated truthiness of the operand."""

    operand: Expression


@dataclass(frozen=True)
class BoolOp:
    """``and`` or ``or`` over two or more operands, evaluated left to right."""

    op: BoolOpName
    operands: tuple[Expression, ...]


@dataclass(frozen=True)
class Compare:
    """One comparison ``left op right`` (comparisons do not chain)."""

    op: CompareOp
    left: Expression
    right: Expression


Expression: TypeAlias = Literal | Ref | ListLit | Not | BoolOp | Compare


class _Token(NamedTuple):
    kind: str  # ref, num, str, word, op or end
    text: str
    col: int  # 1-based


_TOKEN = re.compile(
    r"""(?P<space>\s+)
    |(?P<ref>\$\{[^}]*\})
    |(?P<num>-?[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)
    |(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    |(?P<word>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<op>==|!=|<=|>=|[<>()\[\],])""",
    re.VERBOSE | re.DOTALL,
)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)
_UNESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t"}
_QUOTE = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t"})
_CONSTANTS: dict[str, Scalar] = {"true": True, "false": False, "null": None}
_KEYWORDS = frozenset({"and", "or", "not", "in", *_CONSTANTS})
_COMPARE_OPS: dict[str, CompareOp] = {op: op for op in typing.get_args(CompareOp)}
_HINTS = {"&&": "write 'and'", "||": "write 'or'", "!": "write 'not'", "=": "write '==' to compare"}
_OPERAND = "an operand is a ${reference}, a number, a quoted string, true, false, null, [...] or (...)"


def _error(text: str, col: int, what: str, hint: str = "") -> ExpressionError:
    where = json.dumps(text, ensure_ascii=False)
    return ExpressionError(f"when: {what} at column {col} of {where}" + (f"; {hint}" if hint else ""))


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise _unexpected(text, pos)
        kind, word = str(match.lastgroup), match.group()
        if kind == "word" and word not in _KEYWORDS:
            hint = f"write a reference as ${{params.{word}}} or a string as {json.dumps(word)}"
            if word.lower() in _KEYWORDS:
                hint = f"keywords are lowercase: write {word.lower()!r}"
            raise _error(text, pos + 1, f"unknown name {word!r}", hint)
        if kind != "space":
            tokens.append(_Token(kind, word, pos + 1))
        pos = match.end()
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


def _unexpected(text: str, pos: int) -> ExpressionError:
    if text.startswith("${", pos):
        return _error(text, pos + 1, "unclosed '${'", "a reference ends with '}'")
    if text[pos] in "'\"":
        return _error(text, pos + 1, "unterminated string", f"close it with {text[pos]}")
    bad = text[pos : pos + 2] if text[pos : pos + 2] in _HINTS else text[pos]
    return _error(text, pos + 1, f"unexpected {bad!r}", _HINTS.get(bad, _OPERAND))


def _reference(text: str, token: _Token) -> Reference:
    try:
        return parse_reference(token.text[2:-1])
    except ReferenceSyntaxError as exc:
        raise _error(text, token.col, f"malformed reference {token.text}", str(exc)) from exc


def _number(text: str, token: _Token) -> int | float:
    try:
        value: int | float = float(token.text) if any(c in token.text for c in ".eE") else int(token.text)
    except ValueError as exc:  # int() refuses more digits than sys.get_int_max_str_digits()
        raise _error(text, token.col, "number too long") from exc
    if not math.isfinite(value):
        raise _error(text, token.col, "number out of range")
    return value


def _string(text: str, token: _Token) -> str:
    def unescape(match: re.Match[str]) -> str:
        if match.group(1) not in _UNESCAPES:
            col = token.col + 1 + match.start()
            raise _error(text, col, f"unknown escape \\{match.group(1)}", "use \\\\ \\' \\\" \\n or \\t")
        return _UNESCAPES[match.group(1)]

    return _ESCAPE.sub(unescape, token.text[1:-1])


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0
        self.depth = 0

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.pos + ahead, len(self.tokens) - 1)]

    def take(self) -> _Token:
        token = self.peek()
        self.pos += 1
        return token

    def at(self, text: str) -> bool:
        return self.peek().text == text  # token texts never collide across kinds

    def error(self, what: str, hint: str = "") -> ExpressionError:
        return _error(self.text, self.peek().col, what, hint)

    def nest(self, opener: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _error(self.text, opener.col, f"nesting deeper than {MAX_DEPTH} levels")

    def parse(self) -> Expression:
        expr = self.bool_op()
        if self.peek().kind != "end":
            raise self.error("expected an operator or the end of the condition")
        return expr

    def bool_op(self, op: BoolOpName = "or") -> Expression:
        """``or_expr`` and ``and_expr``: ``and`` binds tighter, so ``or`` operands are ``and`` chains."""
        operands = [self.bool_op("and") if op == "or" else self.not_expr()]
        while self.at(op):
            self.take()
            operands.append(self.bool_op("and") if op == "or" else self.not_expr())
        return operands[0] if len(operands) == 1 else BoolOp(op, tuple(operands))

    def not_expr(self) -> Expression:
        if not self.at("not"):
            return self.comparison()
        self.nest(self.take())
        expr = Not(self.not_expr())
        self.depth -= 1
        return expr

    def compare_op(self) -> CompareOp | None:
        if self.at("not") and self.peek(1).text == "in":
            return "not in"
        return _COMPARE_OPS.get(self.peek().text)

    def comparison(self) -> Expression:
        left = self.operand()
        op = self.compare_op()
        if op is None:
            return left
        self.pos += 2 if op == "not in" else 1
        right = self.operand()
        if self.compare_op() is not None:
            raise self.error("comparisons do not chain", "write 'a < b and b < c'")
        return Compare(op, left, right)

    def operand(self) -> Expression:
        token = self.peek()
        if token.kind in ("ref", "num", "str") or token.text in _CONSTANTS:
            self.take()
            if token.kind == "ref":
                return Ref(_reference(self.text, token))
            if token.kind == "num":
                return Literal(_number(self.text, token))
            return Literal(_string(self.text, token) if token.kind == "str" else _CONSTANTS[token.text])
        if token.text not in ("(", "["):
            raise self.error("expected an operand", _OPERAND)
        self.nest(self.take())
        if token.text == "(":
            expr = self.bool_op()
            self.expect(")", f"the '(' at column {token.col} is not closed")
        else:
            expr = self.list_items(token)
        self.depth -= 1
        return expr

    def list_items(self, opener: _Token) -> ListLit:
        items: list[Expression] = []
        if not self.at("]"):
            items.append(self.operand())
            while self.at(","):
                self.take()
                items.append(self.operand())
        self.expect("]", f"the '[' at column {opener.col} is not closed; separate items with ','")
        return ListLit(tuple(items))

    def expect(self, text: str, hint: str) -> None:
        if not self.at(text):
            raise self.error(f"expected {text!r}", hint)
        self.take()


def parse_expression(text: str) -> Expression:
    """Parse a ``when`` condition.

    Args:
        text: The condition as written, e.g. ``${steps.check.output.count} > 0``.

    Returns:
        The expression tree.

    Raises:
        ExpressionError: naming the column and what was expected there; a malformed ``${...}``
            includes the reference parser's message.
    """
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"when: the condition has {len(text)} characters; the limit is {MAX_LENGTH}")
    return _Parser(text).parse()


def _children(expr: Expression) -> tuple[Expression, ...]:
    if isinstance(expr, ListLit):
        return expr.items
    if isinstance(expr, BoolOp):
        return expr.operands
    if isinstance(expr, Not):
        return (expr.operand,)
    if isinstance(expr, Compare):
        return (expr.left, expr.right)
    return ()


def references(expr: Expression) -> tuple[Reference, ...]:
    """Every reference in ``expr``, left to right (repeats included)."""
    if isinstance(expr, Ref):
        return (expr.reference,)
    return tuple(ref for child in _children(expr) for ref in references(child))


def evaluate(expr: Expression, resolve: Callable[[Reference], Any]) -> bool:
    """Evaluate a condition.

    Args:
        expr: A parsed condition.
        resolve: Returns the JSON value a reference names; references skipped by a short-circuiting
            ``and``/``or`` are not resolved.

    Returns:
        The truthiness of the condition's value.

    Raises:
        ExpressionError: an ordering or ``in`` between values of the wrong JSON types. Errors raised
            by ``resolve`` (e.g. ``LookupError`` for a missing output) propagate unchanged.
    """
    return bool(_value(expr, resolve))


def _value(expr: Expression, resolve: Callable[[Reference], Any]) -> Any:
    if isinstance(expr, Literal):
        return expr.value
    if isinstance(expr, Ref):
        return resolve(expr.reference)
    if isinstance(expr, ListLit):
        return [_value(item, resolve) for item in expr.items]
    if isinstance(expr, Not):
        return not _value(expr.operand, resolve)
    if isinstance(expr, BoolOp):
        values = (bool(_value(operand, resolve)) for operand in expr.operands)
        return all(values) if expr.op == "and" else any(values)
    return _compare(expr, _value(expr.left, resolve), _value(expr.right, resolve))


_ORDER: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _compare(expr: Compare, left: Any, right: Any) -> bool:
    if expr.op in ("==", "!="):
        return _equal(left, right) == (expr.op == "==")
    kinds = (_type(left), _type(right))
    if expr.op in ("in", "not in"):
        if kinds[1] == "array":
            found = any(_equal(left, item) for item in right)
        elif kinds in (("string", "string"), ("string", "object")):
            found = left in right
        else:
            raise ExpressionError(
                f"when: cannot test {kinds[0]!r} {expr.op} {kinds[1]!r} in `{unparse(expr)}`; 'in' needs a "
                "list, a string in a string, or a string key in an object"
            )
        return found == (expr.op == "in")
    if kinds not in (("number", "number"), ("string", "string")):
        raise ExpressionError(
            f"when: cannot compare {kinds[0]!r} {expr.op} {kinds[1]!r} in `{unparse(expr)}`; "
            f"{expr.op} needs two numbers or two strings"
        )
    return bool(_ORDER[expr.op](left, right))


# Checked in order: bool before int, because booleans are not numbers in JSON.
_TYPES = (
    (type(None), "null"),
    (bool, "boolean"),
    (int | float, "number"),
    (str, "string"),
    (list | tuple, "array"),
    (dict, "object"),
)


def _type(value: Any) -> str:
    return next((name for kind, name in _TYPES if isinstance(value, kind)), type(value).__name__)


def _equal(left: Any, right: Any) -> bool:
    kind = _type(left)
    if kind != _type(right):
        return False
    if kind == "array":
        return len(left) == len(right) and all(map(_equal, left, right))
    if kind == "object":
        return bool(left.keys() == right.keys()) and all(_equal(v, right[k]) for k, v in left.items())
    return bool(left == right)


_OR, _AND, _NOT, _COMPARE, _OPERAND_LEVEL = range(5)


def unparse(expr: Expression) -> str:
    """Write ``expr`` canonically: single spaces, double-quoted strings, only the needed parentheses.

    ``parse_expression(unparse(expr)) == expr`` for every tree the parser can produce.

    Raises:
        ValueError: a literal float that is NaN or infinite, which a condition cannot spell.
    """
    if isinstance(expr, Literal):
        return _literal(expr.value)
    if isinstance(expr, Ref):
        return str(expr.reference)
    if isinstance(expr, ListLit):
        return "[" + ", ".join(_sub(item, _OPERAND_LEVEL) for item in expr.items) + "]"
    if isinstance(expr, Not):
        return "not " + _sub(expr.operand, _NOT)
    if isinstance(expr, BoolOp):
        level = _AND if expr.op == "or" else _NOT
        return f" {expr.op} ".join(_sub(operand, level) for operand in expr.operands)
    return f"{_sub(expr.left, _OPERAND_LEVEL)} {expr.op} {_sub(expr.right, _OPERAND_LEVEL)}"


def _level(expr: Expression) -> int:
    if isinstance(expr, BoolOp):
        return _OR if expr.op == "or" else _AND
    if isinstance(expr, Not):
        return _NOT
    return _COMPARE if isinstance(expr, Compare) else _OPERAND_LEVEL


def _sub(expr: Expression, level: int) -> str:
    text = unparse(expr)
    return text if _level(expr) >= level else f"({text})"


def _literal(value: Scalar) -> str:
    if isinstance(value, str):
        return '"' + value.translate(_QUOTE) + '"'
    return json.dumps(value, allow_nan=False)  # null, true, false and numbers are spelled as in JSON
