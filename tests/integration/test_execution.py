"""Workflows on real worker processes over real Redis: order, joins, fan-out, retries, cancel."""

from __future__ import annotations

from datetime import datetime

import pytest

from orchestrator.engine.records import RunStatus, StepStatus
from tests.integration.conftest import Orchestra

pytestmark = pytest.mark.integration


def ts(value: str | None) -> float:
    assert value is not None
    return datetime.fromisoformat(value).timestamp()


def test_non_series_parallel_dag_has_no_false_waits(orchestra: Orchestra) -> None:
    # a->c, a->d, b->d: c must start right after a, without waiting for the slow b.
    orchestra.worker(concurrency=3)
    run_id = orchestra.submit(
        {
            "workflow": "nsp",
            "steps": {
                "a": {"task": "t.effect", "args": {"name": "a", "sleep": 0.1}},
                "b": {"task": "t.effect", "args": {"name": "b", "sleep": 2.0}},
                "c": {"task": "t.effect", "needs": ["a"], "args": {"name": "c"}},
                "d": {"task": "t.effect", "needs": ["a", "b"], "args": {"name": "d"}},
            },
        }
    )
    record = orchestra.wait(run_id)
    assert record.status is RunStatus.SUCCEEDED, record
    s = record.steps
    assert ts(s["c"].started_at) >= ts(s["a"].finished_at)
    assert ts(s["c"].finished_at) < ts(s["b"].finished_at) - 1.0  # c did not wait for b
    assert ts(s["d"].started_at) >= max(ts(s["a"].finished_at), ts(s["b"].finished_at))
    assert orchestra.effects() == {"a": 1, "b": 1, "c": 1, "d": 1}


def test_for_each_over_500_items_fans_in_in_order(orchestra: Orchestra) -> None:
    orchestra.worker(concurrency=4)
    run_id = orchestra.submit(
        {
            "workflow": "fan",
            "params": {"n": {"type": "integer", "default": 500}},
            "steps": {
                "list": {"task": "t.items", "args": {"count": "${params.n}"}},
                "square": {
                    "task": "t.square",
                    "needs": ["list"],
                    "for_each": "${steps.list.output}",
                    "args": {"x": "${item}"},
                },
                "total": {"task": "demo.echo", "needs": ["square"], "args": {"values": "${steps.square.output}"}},
            },
        }
    )
    record = orchestra.wait(run_id, timeout=120)
    assert record.status is RunStatus.SUCCEEDED
    assert record.steps["square"].output == [i * i for i in range(500)]
    assert record.steps["total"].output == {"values": [i * i for i in range(500)]}
    effects = orchestra.effects()
    assert all(effects[f"square-{i}"] == 1 for i in range(500))


def test_transient_errors_retry_with_backoff_and_permanent_ones_fail_at_once(orchestra: Orchestra) -> None:
    orchestra.worker(concurrency=2)
    run_id = orchestra.submit(
        {
            "workflow": "retries",
            "defaults": {
                "retry": {
                    "max_attempts": 4,
                    "backoff": "exponential",
                    "delay": "300ms",
                    "jitter": False,
                    "on": ["ConnectionError"],
                }
            },
            "steps": {
                "flaky": {"task": "t.flaky", "args": {"name": "flaky", "failures": 2}},
                "broken": {"task": "t.flaky", "args": {"name": "broken", "failures": 5, "error": "ValueError"}},
                "after_broken": {"task": "t.effect", "needs": ["broken"], "args": {"name": "after_broken"}},
                "cleanup": {
                    "task": "t.effect",
                    "needs": ["broken"],
                    "trigger_rule": "one_failed",
                    "args": {"name": "cleanup"},
                },
            },
        }
    )
    record = orchestra.wait(run_id)
    assert record.status is RunStatus.FAILED
    flaky = record.steps["flaky"]
    assert flaky.status is StepStatus.SUCCEEDED and flaky.attempts == 3
    times = [float(t) for t in orchestra.redis.lrange(f"{orchestra.prefix}:effects:times-flaky", 0, -1)]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert gaps[0] >= 0.3 and gaps[1] >= 0.6  # 300ms, then doubled
    assert gaps[1] < 3.0
    broken = record.steps["broken"]
    assert broken.status is StepStatus.FAILED and broken.attempts == 1  # ValueError is not retryable
    assert broken.error is not None and broken.error.type == "ValueError"
    assert record.steps["after_broken"].status is StepStatus.SKIPPED
    assert record.steps["cleanup"].status is StepStatus.SUCCEEDED
    assert orchestra.effects().get("after_broken") is None


def test_cancel_then_retry(orchestra: Orchestra) -> None:
    orchestra.worker(concurrency=2)
    data = {
        "workflow": "cancellable",
        "steps": {
            "first": {"task": "t.effect", "args": {"name": "first"}},
            "slow": {"task": "t.block", "needs": ["first"], "args": {"name": "slow", "seconds": 1.5}},
            "last": {"task": "t.effect", "needs": ["slow"], "args": {"name": "last"}},
        },
    }
    run_id = orchestra.submit(data)
    while "slow" not in orchestra.started():
        pass
    record = orchestra.coordinator.cancel(run_id, "user:test")
    assert record.status is RunStatus.CANCELLED
    assert record.steps["last"].status is StepStatus.CANCELLED
    record = orchestra.wait(run_id)
    assert record.steps["first"].status is StepStatus.SUCCEEDED
    record = orchestra.coordinator.retry(run_id, "user:test")
    record = orchestra.wait(run_id)
    assert record.status is RunStatus.SUCCEEDED
    effects = orchestra.effects()
    assert effects["first"] == 1  # succeeded steps keep their outputs, they do not run again
    assert effects["last"] == 1
    history = orchestra.store.runs.history(run_id)
    assert [(e.event, e.by) for e in history if e.event in ("cancelled", "retried")] == [
        ("cancelled", "user:test"),
        ("retried", "user:test"),
    ]
    assert history[0].event == "submitted" and history[0].trigger == "cli"
    assert history[-1].event == "finished" and history[-1].status == "succeeded"
    first = [(e.event, e.step) for e in history if e.step == "first"]
    assert first == [("queued", "first"), ("started", "first"), ("succeeded", "first")]  # not again after the retry
    assert [e.id for e in history] == sorted(e.id for e in history)
    assert orchestra.store.runs.history(run_id, after=history[2].id)[0].id == history[3].id
