"""The ``when`` condition language: parsing, precedence, errors, evaluation and round trips."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.definition.expressions import (
    BoolOp,
    Compare,
    Expression,
    ExpressionError,
    ListLit,
    Literal,
    Not,
    Ref,
    evaluate,
    parse_expression,
    references,
    unparse,
)
from orchestrator.definition.references import Reference, parse_reference
from orchestrator.errors import DefinitionError, ReferenceSyntaxError

PROPERTIES = settings(max_examples=200, deadline=None)
REF_TEXTS = (
    "params.a",
    "params.b",
    "params.limit",
    "steps.fetch.output",
    "steps.fetch.output.rows[0].id",
    "steps.check.status",
    "item",
    "item.name",
    "run.id",
    "run.date",
)


def ref(text: str) -> Ref:
    return Ref(parse_reference(text))


def values(**bound: Any) -> Callable[[Reference], Any]:
    """A resolver over ``params.NAME`` values that fails loudly on anything else."""
    return lambda reference: bound[str(reference.name)]


def check(text: str, **bound: Any) -> bool:
    return evaluate(parse_expression(text), values(**bound))


def parse_error(text: str) -> str:
    with pytest.raises(ExpressionError) as info:
        parse_expression(text)
    return str(info.value)


def evaluation_error(text: str, **bound: Any) -> str:
    with pytest.raises(ExpressionError) as info:
        check(text, **bound)
    return str(info.value)


# --- parsing -----------------------------------------------------------------------------------


def test_a_bare_reference_is_a_whole_condition() -> None:
    expr = parse_expression("${steps.check.output.ok}")
    assert expr == ref("steps.check.output.ok")
    assert evaluate(expr, lambda _: True) is True
    assert evaluate(expr, lambda _: False) is False


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("-12", -12),
        ("1.5", 1.5),
        ("-0.25", -0.25),
        ("1e3", 1000.0),
        ("2E-2", 0.02),
        ("'single'", "single"),
        ('"double"', "double"),
        (r"'it\'s'", "it's"),
        (r'"say \"hi\""', 'say "hi"'),
        (r"'a\tb\nc\\d'", "a\tb\nc\\d"),
        ("'${params.a}'", "${params.a}"),
        ("true", True),
        ("false", False),
        ("null", None),
    ],
)
def test_literals(text: str, value: Any) -> None:
    expr = parse_expression(text)
    assert isinstance(expr, Literal)
    assert expr.value == value
    assert type(expr.value) is type(value)


def test_lists_and_comparison_operators() -> None:
    assert parse_expression("[]") == ListLit(())
    assert parse_expression("[1, 'a', [null], (true)]") == ListLit(
        (Literal(1), Literal("a"), ListLit((Literal(None),)), Literal(True))
    )
    for op in ("==", "!=", "<", "<=", ">", ">=", "in", "not in"):
        assert parse_expression(f"${{params.a}} {op} 1") == Compare(op, ref("params.a"), Literal(1))


def test_whitespace_is_free() -> None:
    assert parse_expression("  ${ params.a }\n==\t1  ") == parse_expression("${params.a} == 1")
    assert parse_expression("not(${item}in[1,2])") == parse_expression("not ${item} in [1, 2]")


def test_not_binds_looser_than_a_comparison() -> None:
    a, b = ref("params.a"), ref("params.b")
    assert parse_expression("not ${params.a} == ${params.b}") == Not(Compare("==", a, b))
    assert parse_expression("(not ${params.a}) == ${params.b}") == Compare("==", Not(a), b)
    assert parse_expression("not ${params.a} and ${params.b}") == BoolOp("and", (Not(a), b))


def test_and_binds_tighter_than_or() -> None:
    a, b, c = ref("params.a"), ref("params.b"), ref("params.limit")
    and_bc = BoolOp("and", (b, c))
    assert parse_expression("${params.a} or ${params.b} and ${params.limit}") == BoolOp("or", (a, and_bc))
    assert parse_expression("${params.a} and ${params.b} or ${params.limit}") == BoolOp(
        "or", (BoolOp("and", (a, b)), c)
    )
    assert parse_expression("(${params.a} or ${params.b}) and ${params.limit}") == BoolOp(
        "and", (BoolOp("or", (a, b)), c)
    )
    assert parse_expression("${params.a} or ${params.b} or ${params.limit}") == BoolOp("or", (a, b, c))


def test_references_in_order() -> None:
    expr = parse_expression("${params.a} == ${steps.fetch.output.rows[0]} or not ${params.a} in [${item}]")
    assert [str(r) for r in references(expr)] == [
        "${params.a}",
        "${steps.fetch.output.rows[0]}",
        "${params.a}",
        "${item}",
    ]
    assert references(parse_expression("1 == 1")) == ()


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("${ params.a }==1 and not(${item}in[1,'a'])", '${params.a} == 1 and not ${item} in [1, "a"]'),
        ("((1))", "1"),
        ("(1 or 2) or 3", "(1 or 2) or 3"),
        ("1 or (2 and 3)", "1 or 2 and 3"),
        ("not (1 or 2)", "not (1 or 2)"),
        ("[(not 1 == 2)] == [(1 and 2)]", "[(not 1 == 2)] == [(1 and 2)]"),
        (r"'it\'s \"x\"\n'", r'''"it's \"x\"\n"'''),
        ("1e16 != -0.5", "1e+16 != -0.5"),
    ],
)
def test_unparse_is_canonical(text: str, canonical: str) -> None:
    assert unparse(parse_expression(text)) == canonical
    assert parse_expression(canonical) == parse_expression(text)


# --- parse errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("${params.x} >", ['expected an operand at column 14 of "${params.x} >"', "${reference}"]),
        ("", ['expected an operand at column 1 of ""']),
        ("1 == not 2", ["expected an operand at column 6"]),
        ("not in [1]", ["expected an operand at column 5"]),
        ("[1,]", ["expected an operand at column 4"]),
        ("[not 1]", ["expected an operand at column 2"]),  # a list item is an operand: parenthesize
        ("(1", ["expected ')' at column 3", "the '(' at column 1 is not closed"]),
        (
            "[1 2",
            ["expected ']' at column 4", "the '[' at column 1 is not closed", "separate items with ','"],
        ),
        ("1 2", ["expected an operator or the end of the condition at column 3"]),
        ("(1 2)", ["expected ')' at column 4"]),
        ("1 < 2 < 3", ["comparisons do not chain at column 7", "a < b and b < c"]),
        ("1 == 2 not in [1]", ["comparisons do not chain at column 8"]),
        ("${params.x", ["unclosed '${' at column 1", "ends with '}'"]),
        ("1 == 'abc", ["unterminated string at column 6"]),
        (r'"a\qb"', [r"unknown escape \q at column 3", r"use \\ \' \" \n or \t"]),
        ("yes", ["unknown name 'yes' at column 1", "${params.yes}", '"yes"']),
        ("True", ["unknown name 'True'", "keywords are lowercase: write 'true'"]),
        ("1 AND 2", ["unknown name 'AND' at column 3", "write 'and'"]),
        ("1 && 2", ["unexpected '&&' at column 3", "write 'and'"]),
        ("1 || 2", ["unexpected '||' at column 3", "write 'or'"]),
        ("!1", ["unexpected '!' at column 1", "write 'not'"]),
        ("1 = 1", ["unexpected '=' at column 3", "write '=='"]),
        ("- 1", ["unexpected '-' at column 1"]),
        ("{}", ["unexpected '{' at column 1"]),
        ("1e999", ["number out of range at column 1"]),
        ("1" * 5000, ["number too long at column 1"]),
    ],
)
def test_parse_errors_name_the_column_and_what_was_expected(text: str, expected: list[str]) -> None:
    message = parse_error(text)
    assert message.startswith("when: ")
    for part in expected:
        assert part in message


@pytest.mark.parametrize("inside", ["foo.bar", "params", "steps.fetch", "run.nope", "params.a..b", ""])
def test_a_malformed_reference_carries_the_reference_parser_message(inside: str) -> None:
    with pytest.raises(ReferenceSyntaxError) as reference_error:
        parse_reference(inside)
    message = parse_error(f"1 == ${{{inside}}}")
    assert f"malformed reference ${{{inside}}} at column 6" in message
    assert str(reference_error.value) in message


def test_a_huge_reference_index_is_an_expression_error() -> None:
    assert "malformed reference" in parse_error("${item[" + "9" * 5000 + "]}")


def test_expression_error_is_a_definition_error() -> None:
    assert issubclass(ExpressionError, DefinitionError)


def test_length_limit() -> None:
    assert parse_expression('"' + "a" * 9998 + '"') == Literal("a" * 9998)
    message = parse_error('"' + "a" * 9999 + '"')
    assert "10001 characters" in message
    assert "the limit is 10000" in message


@pytest.mark.parametrize(
    ("opening", "closing", "levels_each"),
    [("(", ")", 1), ("not ", "", 1), ("[", "]", 1), ("[(not ", ")]", 3)],
)
def test_nesting_is_limited_to_100_levels(opening: str, closing: str, levels_each: int) -> None:
    repeats = 100 // levels_each
    exactly_100 = "not " * (100 - repeats * levels_each) + opening * repeats + "1" + closing * repeats
    expr = parse_expression(exactly_100)
    assert parse_expression(unparse(expr)) == expr
    evaluate(expr, lambda _: None)  # no RecursionError at the deepest nesting allowed
    assert "nesting deeper than 100 levels" in parse_error("not " + exactly_100)


# --- evaluation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("1 == 1.0", True),
        ("true != 1", True),
        ("true == 1", False),
        ("false == 0", False),
        ("null == null", True),
        ("null == false", False),
        ("[1, 2] == [1.0, 2]", True),
        ("[true] == [1]", False),
        ("'abc' == \"abc\"", True),
        ("'1' == 1", False),
        ("1 < 2", True),
        ("2 <= 2", True),
        ("3 > 2.5", True),
        ("2 >= 3", False),
        ("'apple' < 'banana'", True),
        ("2 in [1, 2]", True),
        ("2.0 in [1, 2]", True),
        ("3 not in [1, 2]", True),
        ("1 in [true]", False),
        ("[1] in [[1], 2]", True),
        ("'at' in 'cat'", True),
        ("'dog' not in 'cat'", True),
        ("not 0", True),
        ("not ''", True),
        ("not []", True),
        ("not not 'x'", True),
        ("1 and 0", False),
        ("0 or 2", True),
        ("(2 or 0) == true", True),  # and/or yield booleans, not their operands
        ("(2 or 0) == 2", False),
        ("1 == 2 or 2 == 2 and 3 == 3", True),
        ("not 1 == 2", True),
    ],
)
def test_evaluation(text: str, result: bool) -> None:
    assert check(text) is result


def test_objects_from_references() -> None:
    assert check("${params.a} == ${params.b}", a={"x": [1]}, b={"x": [1.0]})
    assert not check("${params.a} == ${params.b}", a={"x": True}, b={"x": 1})
    assert not check("${params.a} == ${params.b}", a={"x": 1}, b={"x": 1, "y": 2})
    assert check("'x' in ${params.a}", a={"x": None})
    assert check("'y' not in ${params.a}", a={"x": None})
    assert check("${params.a} in ${params.b}", a="b", b=["a", "b"])


@pytest.mark.parametrize(
    ("value", "truthy"),
    [
        (None, False),
        (False, False),
        (0, False),
        (0.0, False),
        ("", False),
        ([], False),
        ({}, False),
        (True, True),
        (-1, True),
        (0.5, True),
        ("false", True),
        ([0], True),
        ({"a": None}, True),
    ],
)
def test_truthiness_of_json_values(value: Any, truthy: bool) -> None:
    assert check("${params.a}", a=value) is truthy
    assert check("not ${params.a}", a=value) is not truthy


def test_and_or_short_circuit() -> None:
    seen: list[str] = []

    def resolve(reference: Reference) -> Any:
        seen.append(reference.text)
        return {"params.no": False, "params.yes": True}[reference.text]  # params.boom: KeyError

    assert evaluate(parse_expression("${params.no} and ${params.boom}"), resolve) is False
    assert evaluate(parse_expression("${params.yes} or ${params.boom}"), resolve) is True
    assert seen == ["params.no", "params.yes"]
    assert check("false and 'a' < 1") is False  # the type error on the right is never reached


def test_resolver_errors_propagate() -> None:
    with pytest.raises(KeyError):
        check("${params.missing}")


@pytest.mark.parametrize(
    ("text", "bound", "expected"),
    [
        ("'a' < 1", {}, "when: cannot compare 'string' < 'number' in `\"a\" < 1`"),
        ("true < 1", {}, "cannot compare 'boolean' < 'number'"),
        ("1 >= false", {}, "cannot compare 'number' >= 'boolean'"),
        ("[1] <= [2]", {}, "cannot compare 'array' <= 'array'"),
        ("${params.a} > null", {"a": 1}, "cannot compare 'number' > 'null' in `${params.a} > null`"),
        ("${params.a} < ${params.a}", {"a": {}}, "cannot compare 'object' < 'object'"),
        ("1 in 2", {}, "cannot test 'number' in 'number'"),
        ("1 in 'abc'", {}, "cannot test 'number' in 'string'"),
        ("'a' in null", {}, "cannot test 'string' in 'null'"),
        ("1 not in ${params.a}", {"a": {"1": 1}}, "cannot test 'number' not in 'object'"),
        ("[1] in ${params.a}", {"a": {}}, "cannot test 'array' in 'object'"),
    ],
)
def test_evaluation_errors_name_json_types(text: str, bound: dict[str, Any], expected: str) -> None:
    assert expected in evaluation_error(text, **bound)


def test_ordering_error_says_what_is_allowed() -> None:
    assert "needs two numbers or two strings" in evaluation_error("'a' < 1")
    assert "'in' needs a list" in evaluation_error("1 in 2")


# --- properties ----------------------------------------------------------------------------------

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
refs = st.sampled_from(REF_TEXTS).map(ref)
compare_ops = st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "in", "not in"])


def _extend(children: st.SearchStrategy[Expression]) -> st.SearchStrategy[Expression]:
    return (
        st.lists(children, max_size=4).map(lambda items: ListLit(tuple(items)))
        | children.map(Not)
        | st.builds(
            lambda op, operands: BoolOp(op, tuple(operands)),
            st.sampled_from(["and", "or"]),
            st.lists(children, min_size=2, max_size=4),
        )
        | st.builds(Compare, compare_ops, children, children)
    )


expressions: st.SearchStrategy[Expression] = st.recursive(scalars.map(Literal) | refs, _extend, max_leaves=30)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4),
    max_leaves=12,
)
condition_like_text = st.lists(
    st.sampled_from(
        ["(", ")", "[", "]", ",", " ", "'", '"', "\\", "$", "{", "}", "-", "1", "2.5", "e9", "=", "==", "!="]
        + ["<", ">=", "and", "or", "not", "in", "true", "null", "${params.a}", "${item[0]}", "${steps"]
    ),
    max_size=40,
).map("".join)


@PROPERTIES
@given(expressions)
def test_unparse_round_trips(expr: Expression) -> None:
    parsed = parse_expression(unparse(expr))
    assert parsed == expr
    # Dataclass equality calls Literal(True) equal to Literal(1); repr also tells the types apart.
    assert repr(parsed) == repr(expr)


@PROPERTIES
@given(st.text() | condition_like_text)
def test_parser_raises_only_expression_error(text: str) -> None:
    try:
        expr = parse_expression(text)
    except ExpressionError as error:
        assert str(error).startswith("when: ")
    else:
        assert parse_expression(unparse(expr)) == expr


@PROPERTIES
@given(expressions, st.dictionaries(st.sampled_from(REF_TEXTS), json_values))
def test_evaluate_raises_only_expression_error(expr: Expression, bound: dict[str, Any]) -> None:
    try:
        result = evaluate(expr, lambda reference: bound.get(reference.text))
    except ExpressionError as error:
        assert str(error).startswith("when: cannot ")
    else:
        assert isinstance(result, bool)
