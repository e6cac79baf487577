"""hypothesis against the parsers users feed: each raises only its own error, in bounded time.

``tests/definition/test_loader.py`` and ``test_expressions.py`` fuzz with random text and token
soup; the strategies here add structure: whole workflow-shaped documents (YAML and JSON, then
mutated), nesting around the depth limits, unicode everywhere, references and conditions built
from the pieces an injection would use, and Python values that are not JSON for params.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import time
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from orchestrator.definition.document import MAX_DEPTH
from orchestrator.definition.durations import MAX_SECONDS, parse_duration
from orchestrator.definition.expressions import MAX_DEPTH as EXPRESSION_DEPTH
from orchestrator.definition.expressions import evaluate, parse_expression
from orchestrator.definition.loader import load_text
from orchestrator.definition.models import Param, ParamType
from orchestrator.definition.params import coerce_all, json_problem, resolve_params
from orchestrator.definition.references import parse_reference, parse_template, render
from orchestrator.errors import ExpressionError, InvalidParams, InvalidWorkflow, ReferenceSyntaxError

# BADINPUT_FUZZ_EXAMPLES=5000 for a long hunt; 150 keeps the suite quick.
FUZZ = settings(
    max_examples=int(os.environ.get("BADINPUT_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
# Per example; the examples are small, so this is about hangs (quadratic paths), not speed.
SECONDS = 5.0


def timed(call: Callable[[], Any]) -> Any:
    started = time.monotonic()
    try:
        return call()
    finally:
        assert time.monotonic() - started < SECONDS


# --- building blocks -----------------------------------------------------------------------------

ODD = ["\u200b", "\u202e", "\ufeff", "\u0430", "é", "\U0001f680", "\x85", "\u2028", "٣", "ﬁ"]
names = st.one_of(
    st.from_regex(r"[a-z_][a-z0-9_-]{0,8}", fullmatch=True),
    st.sampled_from(["__import__", "__class__", "eval", "os", "self", "item", "params", "steps", "run"]),
    st.text(st.sampled_from(["a", "b", "_", "-", ".", " ", "$", "{", "}", *ODD]), min_size=1, max_size=6),
    st.text(max_size=6),
)
reference_pieces = st.sampled_from(
    ["params", "steps", "item", "run", "output", "status", "id", "date", "workflow", "env", "__class__", "__mro__"]
    + [".", "..", "[0]", "[-1]", "[" + "9" * 30 + "]", "[" + "9" * 5000 + "]", "[٣]", "(", ")", "('os')", "!r"]
    + [":>10", " ", "${", "}", "$", "'", '"', "\\", "\n", *ODD]
)
reference_inside = st.one_of(
    st.lists(reference_pieces, max_size=10).map("".join),
    st.tuples(
        st.sampled_from(["params.", "steps.", "item", "run."]), names, st.lists(reference_pieces, max_size=4)
    ).map(lambda t: t[0] + t[1] + "".join(t[2])),
)
templates = st.lists(
    st.one_of(
        reference_inside.map(lambda inner: "${" + inner + "}"),
        reference_inside.map(lambda inner: "$${" + inner + "}"),
        st.sampled_from(["${", "$${", "}", "}}", "$", "text ", "${${params.x}}"]),
        st.text(max_size=5),
    ),
    max_size=8,
).map("".join)
condition_pieces = st.one_of(
    st.sampled_from(
        ["(", ")", "[", "]", ",", " ", "==", "!=", "<", ">=", "and", "or", "not", "in", "not in", "true", "null"]
        + ["__import__('os')", "lambda", ";", ".", "`", "$(", "f'x'", "x", "1e999", "-0", "0x10", "'\\z'", "'"]
        + ["${params.a}", "${steps.s.output.n}", "${item[0]}", "${run.id}", "${", "${__class__}", *ODD]
    ),
    templates,
)
conditions = st.one_of(
    st.lists(condition_pieces, max_size=30).map(" ".join),
    st.integers(0, 2 * EXPRESSION_DEPTH).flatmap(
        lambda n: st.sampled_from([("(" * n, "1" + ")" * n), ("not " * n, "true"), ("[" * n, "]" * n)]).map(
            lambda parts: parts[0] + parts[1]
        )
    ),
)
durations = st.one_of(
    st.from_regex(
        r"\s*[-+]?[0-9٠-٩]{0,30}(\.[0-9]{0,5})?(e[0-9]{1,4})?\s*(ms|s|m|h|d|S|M|us|µs|ns|w)?\s*", fullmatch=True
    ),
    st.tuples(st.integers(0, 10**500), st.sampled_from(["", "ms", "s", "m", "h", "d"])).map(lambda t: f"{t[0]}{t[1]}"),
    st.floats(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.none() | st.booleans() | st.lists(st.integers(), max_size=2) | st.dictionaries(st.text(max_size=2), st.none()),
)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
json_values = st.recursive(
    json_scalars | templates,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(names, children, max_size=4),
    max_leaves=15,
)
# What a Python caller might pass as params that JSON has no place for.
ODD_VALUES: dict[str, Callable[[], Any]] = {
    "nan": lambda: math.nan,
    "infinity": lambda: -math.inf,
    "bytes": lambda: b"bytes",
    "set": lambda: {1, 2},
    "object": object,
    "huge int": lambda: 10**5000,
    "complex": lambda: 1j,
    "tuple": lambda: (1, 2),
    "int keys": lambda: {1: "a"},
    "tuple keys": lambda: {(1,): "a"},
    "range": lambda: range(3),
    "exception": lambda: Exception("x"),
    "function": lambda: print,
}
odd_values = st.sampled_from(sorted(ODD_VALUES)).map(lambda name: ODD_VALUES[name]())
odd_leaves = json_scalars | odd_values
odd_keys = names | st.integers() | st.sampled_from([None, 0, (1,), 1.5])
# Two levels by hand rather than st.recursive: enough to hide an odd value inside a list or object.
odd_nested = odd_leaves | st.lists(odd_leaves, max_size=3) | st.dictionaries(odd_keys, odd_leaves, max_size=3)
param_values = odd_nested | st.lists(odd_nested, max_size=3) | st.dictionaries(odd_keys, odd_nested, max_size=3)


def nested(depth: int, kind: str) -> Any:
    value: Any = 1
    for i in range(depth):
        value = [value] if kind == "list" or (kind == "mixed" and i % 2) else {"k": value}
    return value


# --- workflow-shaped documents ---------------------------------------------------------------------

steps_fields = st.fixed_dictionaries(
    {},
    optional={
        "task": st.one_of(st.sampled_from(["demo.echo", "demo.fetch", "a.b:c"]), names, json_scalars),
        "needs": st.one_of(st.lists(names, max_size=3), names, json_values),
        "args": st.one_of(st.dictionaries(names, json_values, max_size=4), json_values),
        "for_each": st.one_of(templates, json_values),
        "when": st.one_of(conditions, json_scalars),
        "trigger_rule": st.one_of(st.sampled_from(["all_success", "all_done", "one_failed", "always"]), json_scalars),
        "timeout": durations.filter(lambda d: not isinstance(d, float) or math.isfinite(d)),
        "retry": st.one_of(
            st.fixed_dictionaries(
                {},
                optional={
                    "max_attempts": json_scalars,
                    "backoff": st.sampled_from(["fixed", "exponential", "linear"]),
                    "delay": durations.filter(lambda d: not isinstance(d, float) or math.isfinite(d)),
                    "on": st.one_of(st.lists(names, max_size=3), names),
                },
            ),
            json_values,
        ),
        "idempotency_key": st.one_of(templates, json_scalars),
    },
)
# Known fields, plus now and then one the model does not have (a typo, or something hostile).
steps = st.tuples(steps_fields, st.dictionaries(names, json_values, max_size=1)).map(lambda t: {**t[1], **t[0]})
params_decl = st.dictionaries(
    names,
    st.one_of(
        st.fixed_dictionaries(
            {"type": st.sampled_from(["string", "integer", "number", "boolean", "array", "object", "str"])},
            optional={
                "default": json_values,
                "minimum": json_scalars,
                "maximum": json_scalars,
                "enum": st.one_of(st.lists(json_scalars, max_size=3), json_scalars),
            },
        ),
        json_values,
    ),
    max_size=3,
)
documents = st.fixed_dictionaries(
    {"workflow": st.one_of(st.from_regex(r"[a-z0-9][a-z0-9._-]{0,10}", fullmatch=True), names, json_scalars)},
    optional={
        "steps": st.one_of(st.dictionaries(names, steps, min_size=1, max_size=4), json_values),
        "params": params_decl,
        "defaults": st.one_of(st.fixed_dictionaries({}, optional={"timeout": durations, "queue": names}), json_values),
        "schedule": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "cron": st.one_of(st.from_regex(r"[0-9*/,@a-z -]{0,20}", fullmatch=True), json_scalars),
                    "every": durations.filter(lambda d: not isinstance(d, float) or math.isfinite(d)),
                    "timezone": st.one_of(st.sampled_from(["UTC", "Europe/Paris", "../etc", "", "Europe"]), names),
                    "params": st.dictionaries(names, json_values, max_size=2),
                },
            ),
            max_size=2,
        ),
        "version": json_scalars,
        "on_failure": st.one_of(st.fixed_dictionaries({"task": names}), json_values),
    },
)
# Inserted into the text of a document: what turns a fine file into a broken or hostile one.
mutations = st.sampled_from(
    [
        "",
        ":",
        "- ",
        "{",
        "}",
        "[",
        "]",
        "'",
        '"',
        "\t",
        "\n",
        "  ",
        "&a ",
        "*a",
        "<<: *a\n",
        "? ",
        "!!set ",
        "!!binary ",
    ]
    + ["!!python/object/apply:os.system ", "!Ref ", "%YAML 1.1\n---\n", "---\n", "...\n", "#", "\x00", "\x1b", *ODD]
)


def to_yaml(data: Any) -> str:
    stream = io.StringIO()
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.dump(data, stream)
    return stream.getvalue()


@st.composite
def workflow_texts(draw: st.DrawFn) -> tuple[str, str]:
    """A workflow-shaped document as YAML or JSON, sometimes mutated at a few places."""
    data = draw(documents)
    as_json = draw(st.booleans())
    text = json.dumps(data, ensure_ascii=draw(st.booleans())) if as_json else to_yaml(data)
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(mutations) + text[at + draw(st.integers(0, 3)) :]
    return text, "flow.json" if as_json else "flow.yaml"


def assert_refused_properly(exc: InvalidWorkflow) -> None:
    assert exc.problems
    for problem in exc.problems:
        assert problem.message and "\n" not in problem.message and "\r" not in problem.message
        assert len(problem.message) < 2000
        assert problem.line >= 0 and problem.col >= 0


@FUZZ
@given(workflow_texts())
def test_load_text_of_workflow_shaped_documents_raises_only_invalid_workflow(case: tuple[str, str]) -> None:
    text, name = case
    try:
        timed(lambda: load_text(text, name, tasks={"demo.echo", "demo.fetch"}))
    except InvalidWorkflow as exc:
        assert_refused_properly(exc)


@FUZZ
@given(
    st.integers(MAX_DEPTH - 8, MAX_DEPTH + 8),
    st.sampled_from(["list", "map", "mixed"]),
    st.sampled_from(["json", "yaml"]),
)
def test_nesting_loads_up_to_the_limit_and_is_refused_past_it(depth: int, kind: str, style: str) -> None:
    # Four levels above args.x: the document, steps, the step, args.
    data = {"workflow": "deep", "steps": {"a": {"task": "demo.echo", "args": {"x": nested(depth, kind)}}}}
    text = json.dumps(data) if style == "json" else to_yaml(data)

    if depth + 4 <= MAX_DEPTH:
        assert timed(lambda: load_text(text, "deep." + style)).steps["a"].args["x"] is not None
        return
    try:
        timed(lambda: load_text(text, "deep." + style))
    except InvalidWorkflow as exc:
        assert [p.message for p in exc.problems] == [f"the document nests deeper than {MAX_DEPTH} levels"]
    else:
        raise AssertionError(f"{depth + 4} levels loaded")


@FUZZ
@given(
    st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=20),
    st.sampled_from(
        ["workflow", "steps.{}", "params.{}", "steps.a.needs", "steps.a.task", "steps.a.queue", "schedule.timezone"]
    ),
)
def test_unicode_names_anywhere_are_refused_or_kept_exactly(name: str, where: str) -> None:
    data: dict[str, Any] = {"workflow": "u", "steps": {"a": {"task": "demo.echo"}}}
    if where == "workflow":
        data["workflow"] = name
    elif where == "steps.{}":
        data["steps"][name] = {"task": "demo.echo"}
    elif where == "params.{}":
        data["params"] = {name: {"type": "string", "default": name}}
    elif where == "schedule.timezone":
        data["schedule"] = [{"every": "1h", "timezone": name}]
    else:
        data["steps"]["a"][where.rsplit(".", 1)[1]] = [name] if where.endswith("needs") else name
    text = json.dumps(data, ensure_ascii=False)
    try:
        workflow = timed(lambda: load_text(text, "u.json"))
    except InvalidWorkflow as exc:
        assert_refused_properly(exc)
        return
    # Whatever loads is exactly what was written: no normalisation of names behind the user's back.
    assert json.loads(text)["workflow"] == workflow.workflow
    if where == "steps.{}":
        assert name in workflow.steps


# --- durations ---------------------------------------------------------------------------------------


@FUZZ
@given(durations)
def test_parse_duration_raises_only_value_error_and_keeps_its_bounds(value: Any) -> None:
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        assert len(str(exc)) < 300
        return
    assert 0 <= seconds <= MAX_SECONDS
    if isinstance(value, str):  # only ASCII digits with a known unit are read
        assert re.fullmatch(r"\s*[0-9]+(\.[0-9]+)?\s*(ms|s|m|h|d)?\s*", value, re.ASCII)


# --- references ----------------------------------------------------------------------------------


@FUZZ
@given(templates)
def test_parse_template_raises_only_reference_syntax_error(text: str) -> None:
    try:
        template = timed(lambda: parse_template(text))
    except ReferenceSyntaxError as exc:
        assert len(str(exc)) < 1000
        return
    # What parsed renders without evaluating anything: references resolve to a marker, text stays.
    rendered = render(text, lambda ref: f"<{ref.root}>")
    assert isinstance(rendered, str)
    for ref in template.references:
        assert ref.root in ("params", "steps", "item", "run")
        assert all(isinstance(p, int) or re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", p) for p in ref.path)


@FUZZ
@given(reference_inside)
def test_parse_reference_raises_only_reference_syntax_error_and_round_trips(inside: str) -> None:
    try:
        ref = parse_reference(inside)
    except ReferenceSyntaxError:
        return
    assert parse_reference(ref.text) == ref
    assert str(ref) == "${" + inside.strip() + "}"


# --- when ----------------------------------------------------------------------------------------


@FUZZ
@given(conditions, st.dictionaries(st.sampled_from(["params.a", "steps.s.output.n", "item[0]", "run.id"]), json_values))
def test_conditions_raise_only_expression_error_when_parsed_or_evaluated(text: str, bound: dict[str, Any]) -> None:
    try:
        expression = timed(lambda: parse_expression(text))
    except ExpressionError as exc:
        assert str(exc).startswith("when: ")
        return
    with contextlib.suppress(ExpressionError, KeyError):  # KeyError: an unbound reference, raised by our resolver
        assert isinstance(evaluate(expression, lambda ref: bound[ref.text]), bool)


@FUZZ
@given(st.integers(0, 3 * EXPRESSION_DEPTH), st.sampled_from(["(", "not ", "["]))
def test_condition_nesting_is_refused_past_the_limit_not_by_a_recursion_error(depth: int, opener: str) -> None:
    closer = {"(": ")", "not ": "", "[": "]"}[opener]
    text = opener * depth + "1" + closer * depth

    try:
        parse_expression(text)
    except ExpressionError as exc:
        assert depth > EXPRESSION_DEPTH, exc
        assert "nesting deeper than" in str(exc)
    else:
        assert depth <= EXPRESSION_DEPTH


# --- params --------------------------------------------------------------------------------------

param_specs = st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True),
    st.builds(
        lambda kind, bounds, enum: Param.model_validate({"type": kind, **bounds, **enum}),
        st.sampled_from(list(ParamType)),
        st.fixed_dictionaries({}, optional={"minimum": st.integers(-5, 5), "maximum": st.integers(-5, 50)}),
        st.fixed_dictionaries({}, optional={"enum": st.lists(json_scalars, max_size=3)}),
    ),
    max_size=4,
)


@FUZZ
@given(param_specs, st.dictionaries(st.text(max_size=6) | st.integers(), param_values, max_size=5))
def test_resolve_params_raises_only_invalid_params_and_returns_only_json(specs: dict[str, Param], given: Any) -> None:
    try:
        resolved = timed(lambda: resolve_params(specs, given))
    except InvalidParams as exc:
        assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
        return
    assert set(resolved) == set(specs)
    assert json_problem(resolved) is None
    json.dumps(resolved, allow_nan=False)


@FUZZ
@given(param_specs, st.dictionaries(st.text(max_size=6), st.text(max_size=30) | templates | conditions, max_size=5))
def test_command_line_params_raise_only_invalid_params(specs: dict[str, Param], texts: dict[str, str]) -> None:
    assume(all(texts))
    try:
        values = timed(lambda: coerce_all(specs, texts))
    except InvalidParams as exc:
        assert exc.problems
        return
    assert set(values) == set(texts)
    assert json_problem(resolve_params(specs, values)) is None
