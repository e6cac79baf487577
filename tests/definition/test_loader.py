"""Loading workflow files: valid files, YAML/JSON/Python equivalence, anchors, limits and fuzzing.

The messages of invalid files are pinned in ``test_invalid_files.py``; this module covers what
loads, what the loader refuses before validation (size, depth, aliases, encoding) and properties
that hold for any input.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from orchestrator.definition.document import MAX_DEPTH, MAX_FILE_BYTES, parse_document
from orchestrator.definition.durations import MAX_SECONDS, format_duration, parse_duration
from orchestrator.definition.loader import build_workflow, load_file, load_text
from orchestrator.definition.models import (
    Backoff,
    Hook,
    Param,
    ParamType,
    Policy,
    RetrySpec,
    Schedule,
    Step,
    TriggerRule,
    Workflow,
)
from orchestrator.definition.references import parse_template
from orchestrator.errors import InvalidWorkflow, Problem, ReferenceSyntaxError

EXAMPLES = sorted((Path(__file__).parents[2] / "examples").glob("*.yaml"))
PROPERTIES = settings(max_examples=300, deadline=None)

SAME_YAML = """\
workflow: etl
version: 1
params:
  day: {type: string}
  limit: {type: integer, default: 10, minimum: 1}
defaults:
  timeout: 5m
  retry: {max_attempts: 3, backoff: fixed, delay: 500ms, on: [ConnectionError]}
schedule:
  - cron: "0 1 * * *"
    timezone: Europe/Paris
    params: {day: today}
steps:
  extract:
    task: etl.extract
    args: {day: "${params.day}", limit: "${params.limit}"}
  load:
    task: etl.load
    needs: [extract]
    for_each: "${steps.extract.output}"
    args: {row: "${item}"}
    trigger_rule: all_done
    timeout: 30
on_failure: {task: etl.alert}
"""

SAME_JSON = """\
{
  "workflow": "etl",
  "version": 1,
  "params": {
    "day": {"type": "string"},
    "limit": {"type": "integer", "default": 10, "minimum": 1}
  },
  "defaults": {
    "timeout": "5m",
    "retry": {"max_attempts": 3, "backoff": "fixed", "delay": "500ms", "on": ["ConnectionError"]}
  },
  "schedule": [{"cron": "0 1 * * *", "timezone": "Europe/Paris", "params": {"day": "today"}}],
  "steps": {
    "extract": {"task": "etl.extract", "args": {"day": "${params.day}", "limit": "${params.limit}"}},
    "load": {
      "task": "etl.load",
      "needs": ["extract"],
      "for_each": "${steps.extract.output}",
      "args": {"row": "${item}"},
      "trigger_rule": "all_done",
      "timeout": 30
    }
  },
  "on_failure": {"task": "etl.alert"}
}
"""


def problems_of(text: str) -> list[str]:
    with pytest.raises(InvalidWorkflow) as info:
        load_text(text, "flow.yaml")
    return [str(p) for p in info.value.problems]


# --- valid files -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_loads(path: Path) -> None:
    workflow = load_file(path)

    assert workflow.steps
    assert Workflow.model_validate(workflow.dump()) == workflow


def test_the_content_pipeline_example_reads_as_written() -> None:
    workflow = load_file(Path(__file__).parents[2] / "examples" / "content-pipeline.yaml")

    assert workflow.name == "content-pipeline"
    assert list(workflow.steps) == ["fetch", "process", "thumbnails", "publish", "report"]
    assert workflow.steps["publish"].needs == ("process", "thumbnails")
    assert workflow.steps["thumbnails"].for_each == "${steps.fetch.output}"
    assert workflow.steps["report"].trigger_rule is TriggerRule.ALL_DONE
    assert workflow.defaults.timeout == 300.0
    assert workflow.defaults.retry == RetrySpec(
        max_attempts=3,
        backoff=Backoff.EXPONENTIAL,
        delay=0.2,
        max_delay=5.0,
        jitter=True,
        on=("ConnectionError", "TimeoutError"),
    )
    assert workflow.params["limit"] == Param(type=ParamType.INTEGER, default=5, minimum=1)


def test_yaml_and_json_spellings_give_equal_models() -> None:
    assert load_text(SAME_YAML, "etl.yaml") == load_text(SAME_JSON, "etl.json")


def test_a_loaded_workflow_survives_a_json_round_trip() -> None:
    workflow = load_file(EXAMPLES[0])

    assert load_text(json.dumps(workflow.dump()), "again.json") == workflow


def test_code_builds_the_same_model_as_a_file() -> None:
    in_code = Workflow(
        workflow="etl",
        version=1,
        params={"day": Param(type=ParamType.STRING), "limit": Param(type=ParamType.INTEGER, default=10, minimum=1)},
        defaults=Policy(
            timeout=300,
            retry=RetrySpec(max_attempts=3, backoff=Backoff.FIXED, delay=0.5, on=("ConnectionError",)),
        ),
        schedule=(Schedule(cron="0 1 * * *", timezone="Europe/Paris", params={"day": "today"}),),
        steps={
            "extract": Step(task="etl.extract", args={"day": "${params.day}", "limit": "${params.limit}"}),
            "load": Step(
                task="etl.load",
                needs=("extract",),
                for_each="${steps.extract.output}",
                args={"row": "${item}"},
                trigger_rule=TriggerRule.ALL_DONE,
                timeout=30,
            ),
        },
        on_failure=Hook(task="etl.alert"),
    )

    assert in_code == load_text(SAME_YAML)
    assert build_workflow(json.loads(SAME_JSON)) == in_code


def test_build_workflow_checks_data_from_code_like_a_file() -> None:
    data = {"workflow": "etl", "steps": {"load": {"task": "etl.load", "needs": ["extrct"]}, "extract": {"task": "x"}}}

    with pytest.raises(InvalidWorkflow) as info:
        build_workflow(data)

    # No positions in code: the message names the place instead.
    assert [str(p) for p in info.value.problems] == [
        "<python>: step 'load' needs 'extrct', which is not a step; did you mean 'extract'?"
    ]


def test_task_names_are_checked_only_when_the_registered_tasks_are_known() -> None:
    text = "workflow: w\nsteps:\n  a: {task: demo.fetch}\n"

    assert load_text(text).steps["a"].task == "demo.fetch"
    assert load_text(text, tasks={"demo.fetch"}).steps["a"].task == "demo.fetch"
    with pytest.raises(InvalidWorkflow, match="unknown task 'demo.fetch'"):
        load_text(text, tasks={"demo.other"})


# --- anchors and merge keys --------------------------------------------------------------------


def test_anchors_and_merge_keys_share_settings_and_explicit_keys_win() -> None:
    workflow = load_text(
        """\
workflow: anchors
defaults:
  retry: &retry {max_attempts: 5, delay: 1s}
steps:
  fetch: &io
    task: demo.fetch
    queue: io
    timeout: 30s
  fetch_more:
    <<: *io
    timeout: 1m
  fetch_again:
    timeout: 2m
    <<: *io
    retry: *retry
  fetch_both:
    <<: [{task: demo.first, queue: first}, *io]
"""
    )

    more, again, both = (workflow.steps[name] for name in ("fetch_more", "fetch_again", "fetch_both"))
    assert (more.task, more.queue, more.timeout) == ("demo.fetch", "io", 60)
    assert (again.task, again.timeout, again.retry) == ("demo.fetch", 120, workflow.defaults.retry)
    # In a list of merged mappings the earlier one wins.
    assert (both.task, both.queue, both.timeout) == ("demo.first", "first", 30)


def test_a_problem_in_a_merged_mapping_points_at_the_anchor() -> None:
    text = "workflow: w\ndefaults: {retry: &r {delay: soon}}\nsteps:\n  a:\n    task: t\n    retry: {<<: *r}\n"

    hint = "is not a duration; write e.g. 500ms, 30s, 5m, 2h or a number of seconds"
    assert problems_of(text) == [
        f"flow.yaml:2:30: defaults.retry.delay: 'soon' {hint}",
        f"flow.yaml:2:30: steps.a.retry.delay: 'soon' {hint}",
    ]


def test_merging_something_other_than_a_mapping_is_a_problem() -> None:
    text = "workflow: w\nsteps:\n  a:\n    <<: 5\n    task: t\n"

    assert problems_of(text) == ["flow.yaml:4:9: `<<` merges a mapping (such as *anchor) or a list of them"]


# --- refused before validation -----------------------------------------------------------------


def test_an_alias_bomb_is_refused_quickly() -> None:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    lines += ["workflow: laughs", "steps: {a: {task: t, args: {all: *a9}}}"]
    started = time.perf_counter()

    problems = problems_of("\n".join(lines))

    assert time.perf_counter() - started < 5
    assert len(problems) == 1
    assert "the document expands to more than 200000 values, counting each use of an alias" in problems[0]


@pytest.mark.parametrize(
    "text",
    [
        "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
        "[" * 100_000 + "]" * 100_000,
        "workflow: w\nsteps: {a: {task: t, args: {x: " + "{x: " * 10_000 + "1" + "}" * 10_003 + "\n",
        "workflow: w\nsteps:\n" + "".join(" " * (i + 2) + f"k{i}:\n" for i in range(200)),
    ],
    ids=["just-too-deep", "flow", "flow-in-args", "block"],
)
def test_deep_nesting_is_refused_quickly(text: str) -> None:
    started = time.perf_counter()

    problems = problems_of(text)

    assert time.perf_counter() - started < 5
    assert len(problems) == 1
    assert problems[0].endswith(f": the document nests deeper than {MAX_DEPTH} levels")


def test_nesting_up_to_the_limit_is_fine() -> None:
    deep = "[" * (MAX_DEPTH - 4) + "1" + "]" * (MAX_DEPTH - 4)

    workflow = load_text(f"workflow: w\nsteps: {{a: {{task: t, args: {{x: {deep}}}}}}}\n")

    assert workflow.steps["a"].args["x"] is not None


def test_a_missing_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(InvalidWorkflow) as info:
        load_file(tmp_path / "missing.yaml")

    assert [str(p) for p in info.value.problems] == [
        f"{tmp_path / 'missing.yaml'}: cannot read file: No such file or directory"
    ]


def test_a_directory_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(InvalidWorkflow, match="cannot read file: Is a directory"):
        load_file(tmp_path)


def test_a_file_that_is_not_utf8_says_so(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("workflow: café\n".encode("latin-1"))

    with pytest.raises(InvalidWorkflow) as info:
        load_file(path)

    assert info.value.problems == (Problem(str(path), 0, 0, "not UTF-8 text (byte 13); save the file as UTF-8"),)


def test_a_file_that_is_too_large_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_text("workflow: w\n" + "# padding\n" * (MAX_FILE_BYTES // 10), encoding="utf-8")

    with pytest.raises(InvalidWorkflow) as info:
        load_file(path)

    assert [p.message for p in info.value.problems] == [f"file is larger than {MAX_FILE_BYTES // 1024} KiB"]


@pytest.mark.parametrize("text", ["", "   \n", "# only a comment\n"])
def test_an_empty_file_says_what_a_workflow_needs(text: str) -> None:
    assert problems_of(text) == ["flow.yaml:1:1: the file is empty; a workflow needs `workflow:` and `steps:`"]


def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfworkflow: bom\nsteps: {a: {task: t}}\n")

    assert load_file(path).name == "bom"


@pytest.mark.parametrize(
    ("literal", "value"),
    [("0x1F", 31), ("0o17", 15), ("0b101", 5), ("-1_000", -1000), ("017", 17), ("1.5e3", 1500.0), ("null", None)],
)
def test_yaml_numbers_become_json_numbers(literal: str, value: object) -> None:
    data, _, problems = parse_document(f"n: {literal}\n", "n.yaml")

    assert (data, problems) == ({"n": value}, [])


@pytest.mark.parametrize("literal", [".inf", "-.Inf", ".nan", "1e400", "1" * 400])
def test_numbers_json_cannot_hold_are_problems(literal: str) -> None:
    _, _, problems = parse_document(f"n: {literal}\n", "n.yaml")

    assert [(p.line, p.col) for p in problems] == [(1, 4)]
    message = problems[0].message
    assert message.startswith("n: ") and message.endswith("; write a finite number")  # names the field
    assert ("is not a JSON number" if "n" in literal.lower() else "is too large for a number") in message


# --- properties --------------------------------------------------------------------------------

SECONDS = st.integers(min_value=0, max_value=int(MAX_SECONDS))
REFERENCE_TEXT = st.lists(
    st.sampled_from(["${", "$${", "}", ".", "[", "]", "0", "12", "params", "steps", "item", "run", "output", "a", " "]),
    max_size=12,
).map("".join)
YAML_TEXT = st.lists(
    st.sampled_from(
        ["workflow: w\n", "steps:\n", "  a:\n", "    task: t\n", "    needs: [", "]", "{", "}", ":", "- "]
        + ["\n", "  ", "\t", "&x ", "*x", "<<: ", "? ", "!!binary ", "'", '"', "${steps.a.output}", ".inf"]
        + ["0b", "1", "é", "\u200b"]
    ),
    max_size=30,
).map("".join)


@PROPERTIES
@given(SECONDS)
def test_whole_seconds_round_trip_through_format_duration(seconds: int) -> None:
    assert parse_duration(format_duration(float(seconds))) == seconds


def test_format_duration_accepts_an_integer_below_one_second() -> None:
    assert format_duration(0) == "0s"


@PROPERTIES
@given(st.integers(min_value=0, max_value=1000), st.sampled_from(["ms", "s", "m", "h", "d"]))
def test_every_unit_parses_and_formats_back_to_the_same_duration(amount: int, unit: str) -> None:
    assume(unit != "d" or amount <= 366)
    seconds = parse_duration(f"{amount}{unit}")

    assert parse_duration(format_duration(seconds)) == seconds


def test_fractional_seconds_above_one_second_round_trip() -> None:
    assert parse_duration(format_duration(12345.678)) == 12345.678


@PROPERTIES
@given(
    st.one_of(
        st.text(),
        st.floats(),
        st.integers(min_value=-(10**300), max_value=10**300),
        st.booleans(),
        st.none(),
        st.lists(st.integers()),
        st.binary(),
    )
)
def test_parse_duration_raises_only_value_error(value: object) -> None:
    try:
        seconds = parse_duration(value)
    except ValueError:
        return
    assert 0 <= seconds <= MAX_SECONDS


def test_parse_duration_of_an_integer_beyond_floats_raises_value_error() -> None:
    with pytest.raises(ValueError):
        parse_duration(10**400)


@PROPERTIES
@given(st.one_of(st.text(), REFERENCE_TEXT))
def test_parse_template_raises_only_reference_syntax_error(text: str) -> None:
    with contextlib.suppress(ReferenceSyntaxError):
        parse_template(text)


@PROPERTIES
@given(st.text())
def test_load_text_raises_only_invalid_workflow_on_any_text(text: str) -> None:
    try:
        load_text(text)
    except InvalidWorkflow as exc:
        assert exc.problems
        assert all(p.message and "\n" not in p.message for p in exc.problems)


@PROPERTIES
@given(YAML_TEXT)
def test_load_text_raises_only_invalid_workflow_on_yaml_like_text(text: str) -> None:
    try:
        load_text(text)
    except InvalidWorkflow as exc:
        assert exc.problems
