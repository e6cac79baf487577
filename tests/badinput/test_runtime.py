"""Bad values met at run time, on a real worker: the step fails with a clear error, the run fails,
nothing crashes and nothing but the run's own keys change. ``${...}`` and ``when`` text that
arrives as data (params, outputs) stays data: nothing is evaluated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from orchestrator.definition.loader import build_workflow
from orchestrator.engine.records import RunRecord
from orchestrator.store.keys import Keys
from tests.badinput.conftest import BadInputOrchestra, changed_keys, runs_own_keys, snapshot

NOT_JSON = "NonSerializableOutput", "task 'bad.returns' returned a value that is not JSON: "


@dataclass(frozen=True)
class RuntimeCase:
    """A workflow whose run must end ``status`` with ``steps`` as given.

    ``steps`` maps a step name to ``(status, error type, start of the error message)``; the error
    parts are None for steps that must not have failed.
    """

    id: str
    workflow: dict[str, Any]
    steps: dict[str, tuple[str, str | None, str | None]]
    status: str = "failed"
    params: dict[str, Any] = field(default_factory=dict)


def returning(kind: str) -> dict[str, Any]:
    """``make`` returns the value ``kind`` (see tasks.py); ``after`` would receive it."""
    return {
        "workflow": f"returns-{kind}",
        "steps": {
            "make": {"task": "bad.returns", "args": {"kind": kind}},
            "after": {"task": "bad.echo", "needs": ["make"], "args": {"value": "${steps.make.output}"}},
        },
    }


def non_json(kind: str, message: str) -> RuntimeCase:
    return RuntimeCase(
        f"returns-{kind}",
        returning(kind),
        {"make": ("failed", NOT_JSON[0], NOT_JSON[1] + message), "after": ("skipped", None, None)},
    )


def reading(kind: str, step: dict[str, Any]) -> dict[str, Any]:
    """``make`` returns ``kind``; ``use`` (given) reads it."""
    return {
        "workflow": f"reads-{kind}",
        "steps": {"make": {"task": "bad.returns", "args": {"kind": kind}}, "use": {"needs": ["make"], **step}},
    }


CASES: list[RuntimeCase] = [
    non_json("set", "Object of type set is not JSON serializable"),
    non_json("object", "Object of type object is not JSON serializable"),
    non_json("bytes", "Object of type bytes is not JSON serializable"),
    non_json("generator", "Object of type generator is not JSON serializable"),
    non_json("exception", "Object of type ValueError is not JSON serializable"),
    non_json("tuple-key", "keys must be str, int, float, bool or None, not tuple"),
    non_json("circular", "Circular reference detected"),
    non_json("huge-int", "Exceeds the limit (4300 digits) for integer string conversion"),
    non_json("nan", "Out of range float values are not JSON compliant"),
    non_json("infinity-in-a-list", "Out of range float values are not JSON compliant"),
    non_json("nested-300", "lists and objects nest deeper than 64 levels"),
    non_json("nested-100000", "maximum recursion depth exceeded while encoding a JSON"),
    RuntimeCase(
        "for-each-item-returns-a-set",
        {
            "workflow": "items",
            "params": {"kinds": {"type": "array", "default": ["dict", "set", "dict"]}},
            "steps": {"each": {"task": "bad.returns", "for_each": "${params.kinds}", "args": {"kind": "${item}"}}},
        },
        {"each": ("failed", NOT_JSON[0], NOT_JSON[1] + "Object of type set is not JSON serializable")},
    ),
    RuntimeCase(
        "when-reads-a-missing-field",
        reading("dict", {"task": "bad.echo", "when": "${steps.make.output.total} > 0"}),
        {
            "make": ("succeeded", None, None),
            "use": ("failed", "MissingValue", "${steps.make.output.total} has no 'total' (the value there is "),
        },
    ),
    RuntimeCase(
        "when-orders-a-string-and-a-number",
        reading("text", {"task": "bad.echo", "when": "${steps.make.output} > 1"}),
        {
            "make": ("succeeded", None, None),
            "use": ("failed", "MissingValue", "when: cannot compare 'string' > 'number'"),
        },
    ),
    RuntimeCase(
        "for-each-over-an-object",
        reading("dict", {"task": "bad.echo", "for_each": "${steps.make.output}", "args": {"x": "${item}"}}),
        {
            "make": ("succeeded", None, None),
            "use": ("failed", "MissingValue", "for_each ${steps.make.output} must name a list, but it is dict"),
        },
    ),
    RuntimeCase(
        "for-each-over-null",
        reading("null", {"task": "bad.echo", "for_each": "${steps.make.output}", "args": {"x": "${item}"}}),
        {
            "make": ("succeeded", None, None),
            "use": ("failed", "MissingValue", "for_each ${steps.make.output} must name a list, but it is NoneType"),
        },
    ),
    RuntimeCase(
        "a-path-to-a-python-attribute",
        {
            "workflow": "dunder",
            "params": {"opts": {"type": "object", "default": {"a": 1}}},
            "steps": {"use": {"task": "bad.echo", "args": {"cls": "${params.opts.__class__}"}}},
        },
        {"use": ("failed", "MissingValue", "${params.opts.__class__} has no '__class__' (the value there is ")},
    ),
]


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=c.id) for c in CASES],
)
def test_a_bad_value_at_run_time_fails_its_step_and_the_run(orchestra: BadInputOrchestra, case: RuntimeCase) -> None:
    record = run_and_check_store(orchestra, case.workflow, case.params)

    assert {name: step.status.value for name, step in record.steps.items()} == {
        name: status for name, (status, _, _) in case.steps.items()
    }
    for name, (_, error_type, message) in case.steps.items():
        error = record.steps[name].error
        if error_type is None:
            assert error is None, name
        else:
            assert error is not None and error.type == error_type, record.steps[name]
            assert error.message.startswith(str(message)), error.message
    assert record.status.value == case.status


def test_references_and_code_arriving_as_data_stay_data(orchestra: BadInputOrchestra, tmp_path: Path) -> None:
    marker = tmp_path / "owned"
    code = f"__import__('os').system('touch {marker}')"
    workflow = {
        "workflow": "data-not-code",
        "params": {"name": {"type": "string"}, "code": {"type": "string"}},
        "steps": {
            "first": {
                "task": "bad.echo",
                "args": {
                    "whole": "${params.name}",
                    "inside": "pre-${params.name}-post",
                    "code": "${params.code}",
                    "escaped": "$${params.name}",
                    "extra_brace": "${params.name}}",
                    "key": {"${params.name}": "${params.code}"},
                },
            },
            "second": {"task": "bad.echo", "needs": ["first"], "args": {"got": "${steps.first.output.whole}"}},
            "never": {"task": "bad.echo", "needs": ["first"], "when": "${params.code} == 'x'"},
            "compared": {"task": "bad.echo", "needs": ["first"], "when": "${params.code} != 'x'"},
        },
    }
    params = {"name": "${run.id}", "code": code}

    record = run_and_check_store(orchestra, workflow, params)

    assert record.status.value == "succeeded", record.model_dump_json(indent=1)
    assert record.steps["first"].output == {
        "whole": "${run.id}",
        "inside": "pre-${run.id}-post",
        "code": code,
        "escaped": "${params.name}",
        "extra_brace": "${run.id}}",
        "key": {"${params.name}": code},
    }
    assert record.steps["second"].output == {"got": "${run.id}"}
    assert record.steps["never"].status.value == "skipped"
    assert record.steps["compared"].status.value == "succeeded"
    assert not marker.exists()


def run_and_check_store(orch: BadInputOrchestra, data: dict[str, Any], params: dict[str, Any]) -> RunRecord:
    """Submit, wait for the end, and check that only the run's own keys changed and it is readable."""
    before = snapshot(orch.redis, orch.prefix)
    run_id = orch.coordinator.submit(build_workflow(data), params).run_id
    record = orch.wait(run_id, timeout=30)
    after = snapshot(orch.redis, orch.prefix)

    allowed = runs_own_keys(orch, run_id, data["workflow"])
    assert {key for key in changed_keys(before, after) if not allowed(key)} == set()
    keys = Keys(orch.prefix)
    for index in (keys.leases(), keys.outbox()):
        assert not [m for m in orch.redis.zrange(index, 0, -1) if m.startswith(f"{run_id}|")], index
    # What `status --json` prints: the record must serialize and read back whatever the tasks returned.
    assert json.loads(orch.coordinator.get(run_id).model_dump_json())["run_id"] == run_id
    return record
