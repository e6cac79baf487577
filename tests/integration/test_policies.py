"""Step policies on real workers: time limits, duplicate deliveries, hooks, schedules."""

from __future__ import annotations

import time

import pytest

from orchestrator.engine.ports import RunQuery
from orchestrator.engine.records import RunStatus, StepStatus
from orchestrator.engine.unit import StepMessage
from tests.integration.conftest import Orchestra

pytestmark = pytest.mark.integration


def test_step_timeout_is_a_timeout_error_retried_by_policy(orchestra: Orchestra) -> None:
    orchestra.worker(concurrency=2)  # prefork: Celery enforces the time limits
    run_id = orchestra.submit(
        {
            "workflow": "slow",
            "steps": {
                "slow": {
                    "task": "t.block",
                    "args": {"name": "slow", "seconds": 30},
                    "timeout": "1s",
                    "retry": {"max_attempts": 2, "delay": "100ms", "on": ["TimeoutError"]},
                },
                "next": {"task": "t.effect", "needs": ["slow"], "args": {"name": "next"}},
            },
        }
    )
    record = orchestra.wait(run_id, timeout=30)
    slow = record.steps["slow"]
    assert record.status is RunStatus.FAILED
    assert slow.status is StepStatus.FAILED and slow.attempts == 2
    assert slow.error is not None and slow.error.type == "StepTimeout"  # a TimeoutError: retry.on names it
    assert "1s" in slow.error.message
    assert record.steps["next"].status is StepStatus.SKIPPED
    assert orchestra.started() == ["slow", "slow"]


def test_a_duplicated_message_runs_the_step_once(orchestra: Orchestra) -> None:
    orchestra.worker(concurrency=3)
    data = {
        "workflow": "dup",
        "steps": {
            "first": {"task": "t.block", "args": {"name": "first", "seconds": 1.0}},
            "second": {"task": "t.effect", "needs": ["first"], "args": {"name": "second"}},
        },
    }
    workflow = orchestra.workflow(data)
    run_id = orchestra.coordinator.submit(workflow).run_id
    plan = orchestra.coordinator.compile(workflow)
    # The same message again, twice, while the first delivery runs: as a broker redelivery would.
    while "first" not in orchestra.started():
        time.sleep(0.01)
    duplicate = StepMessage(run_id=run_id, plan_id=plan.plan_id, step="first")
    orchestra.coordinator._send(plan, [duplicate, duplicate])
    record = orchestra.wait(run_id)
    assert record.status is RunStatus.SUCCEEDED
    assert orchestra.effects() == {"first": 1, "second": 1}
    # And after the step ended: a late duplicate changes nothing.
    orchestra.coordinator._send(plan, [duplicate])
    time.sleep(0.5)
    assert orchestra.effects() == {"first": 1, "second": 1}
    assert orchestra.coordinator.get(run_id).status is RunStatus.SUCCEEDED


def test_hooks_get_the_run_record(orchestra: Orchestra) -> None:
    orchestra.worker(concurrency=2)
    ok = orchestra.submit(
        {
            "workflow": "ok",
            "on_success": {"task": "t.hook"},
            "on_failure": {"task": "t.hook"},
            "steps": {"a": {"task": "t.effect", "args": {"name": "a"}}},
        }
    )
    bad = orchestra.submit(
        {
            "workflow": "bad",
            "on_success": {"task": "t.hook"},
            "on_failure": {"task": "t.hook"},
            "steps": {"a": {"task": "demo.fail"}},
        }
    )
    orchestra.wait(ok)
    orchestra.wait(bad)
    deadline = time.monotonic() + 10
    while orchestra.redis.llen(f"{orchestra.prefix}:effects:hooks") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    hooks = sorted(orchestra.redis.lrange(f"{orchestra.prefix}:effects:hooks", 0, -1))
    assert hooks == ["bad:failed", "ok:succeeded"]


def test_invalid_params_record_nothing(orchestra: Orchestra) -> None:
    from orchestrator.errors import InvalidParams

    data = {"workflow": "typed", "params": {"n": {"type": "integer"}}, "steps": {"a": {"task": "t.effect"}}}
    with pytest.raises(InvalidParams, match="param 'n' must be integer"):
        orchestra.submit(data, {"n": "five"})
    assert orchestra.store.runs.page(RunQuery()).runs == []


def test_idempotency_key_runs_a_side_effect_once_across_runs(orchestra: Orchestra) -> None:
    orchestra.worker(concurrency=2)
    data = {
        "workflow": "idem",
        "params": {"order": {"type": "string"}},
        "steps": {
            "charge": {
                "task": "t.effect",
                "idempotency_key": "charge-${params.order}",
                "args": {"name": "charge", "value": "charged ${params.order}"},
            },
        },
    }
    first = orchestra.wait(orchestra.submit(data, {"order": "A1"}))
    second = orchestra.wait(orchestra.submit(data, {"order": "A1"}))
    third = orchestra.wait(orchestra.submit(data, {"order": "B2"}))
    assert first.steps["charge"].output == second.steps["charge"].output == "charged A1"
    assert third.steps["charge"].output == "charged B2"
    assert orchestra.effects()["charge"] == 2  # A1 once, B2 once


def test_a_key_held_by_a_live_execution_defers_the_other_without_using_an_attempt(orchestra: Orchestra) -> None:
    orchestra.worker(concurrency=2)
    data = {
        "workflow": "idem-race",
        "steps": {
            "charge": {
                "task": "t.effect",
                "idempotency_key": "charge-shared",
                "args": {"name": "charge", "sleep": 3.0, "value": "charged"},
            },
        },
    }
    first, second = orchestra.submit(data), orchestra.submit(data)  # both start at once
    records = [orchestra.wait(first, timeout=60), orchestra.wait(second, timeout=60)]
    assert [r.status for r in records] == [RunStatus.SUCCEEDED] * 2
    assert [r.steps["charge"].output for r in records] == ["charged", "charged"]
    assert [r.steps["charge"].attempts for r in records] == [1, 1]  # the deferral was not an attempt
    assert orchestra.effects()["charge"] == 1


def test_the_same_key_for_two_tasks_names_two_side_effects(orchestra: Orchestra) -> None:
    orchestra.worker(concurrency=2)
    key = "shared-key"
    first = orchestra.submit(
        {
            "workflow": "w-a",
            "steps": {"s": {"task": "t.effect", "idempotency_key": key, "args": {"name": "a", "value": "A"}}},
        }
    )
    assert orchestra.wait(first).steps["s"].output == "A"
    second = orchestra.submit(
        {"workflow": "w-b", "steps": {"s": {"task": "t.square", "idempotency_key": key, "args": {"x": 3}}}}
    )
    assert orchestra.wait(second).steps["s"].output == 9  # not workflow w-a's "A"
