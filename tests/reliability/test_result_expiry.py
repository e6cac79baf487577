"""A run that outlives Celery's result expiry still fires its joins: they never read the result backend.

Celery's Redis chord counts header results in the result backend, and those keys expire after
``result_expires``: a chord whose header outlives the expiry never fires its body. Our joins are
counted in the run's own hashes (``lua/complete.lua``), and the step task ignores its result.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from orchestrator.engine.records import RunStatus
from tests.reliability.conftest import Harness, timestamp, wait_until

pytestmark = pytest.mark.integration

RESULT_EXPIRES = 2.0


def test_joins_fire_after_the_result_expiry(harness: Callable[..., Harness], recovery: Callable[..., None]) -> None:
    orchestra = harness(ORCH_WORKER__RESULT_EXPIRES=f"{RESULT_EXPIRES:g}")
    orchestra.worker(name="expiry", concurrency=2)
    # The worker really keeps results for 2 s: a plain Celery task's result key gets that TTL.
    probe = orchestra.app.send_task("t.effect", kwargs={"name": "probe"}, queue="default", ignore_result=False)
    result_key = f"celery-task-meta-{probe.id}"
    wait_until(lambda: orchestra.redis.exists(result_key) == 1, 20, "the probe's result was stored")
    assert 0 < orchestra.redis.pttl(result_key) <= RESULT_EXPIRES * 1000

    long_seconds = 4 * RESULT_EXPIRES
    run_id = orchestra.submit(
        {
            "workflow": "outlives-results",
            "params": {"xs": {"type": "array", "default": [1, 2, 3]}},
            "steps": {
                "early": {"task": "t.effect", "args": {"name": "early"}},
                "long": {"task": "t.block", "args": {"name": "long", "seconds": long_seconds}},
                "fan": {"task": "t.square", "needs": ["early"], "for_each": "${params.xs}", "args": {"x": "${item}"}},
                # Fan-in of three needs: two ended long before the result expiry, one long after.
                "join": {"task": "t.effect", "needs": ["early", "long", "fan"], "args": {"name": "join"}},
            },
        }
    )
    record = orchestra.wait(run_id, timeout=60)

    assert record.status is RunStatus.SUCCEEDED, orchestra.logs()
    assert orchestra.effects() == {
        "probe": 1,
        "early": 1,
        "long": 1,
        "square-1": 1,
        "square-2": 1,
        "square-3": 1,
        "join": 1,
    }
    assert record.steps["fan"].output == [1, 4, 9]
    steps = record.steps
    fan_done = timestamp(steps["fan"].finished_at)
    join_started = timestamp(steps["join"].started_at)
    assert join_started - fan_done > 2 * RESULT_EXPIRES, "the join did not outlive the result expiry"
    # No step wrote a result for a join to read, and the probe's result is gone by now.
    task_ids = [step.task_id for step in steps.values()]
    assert all(task_ids)
    assert orchestra.redis.exists(*(f"celery-task-meta-{t}" for t in task_ids)) == 0
    assert orchestra.redis.exists(result_key) == 0
    # The join counted its arrivals in the run's own state.
    arrivals = orchestra.redis.hgetall(orchestra.store.keys.join(run_id, "join"))
    assert arrivals == {"early": "succeeded", "long": "succeeded", "fan": "succeeded"}
    recovery(
        join_started - timestamp(steps["long"].finished_at),
        "last need ended -> join started",
        run_seconds=timestamp(record.finished_at) - timestamp(record.created_at),
        result_expires=RESULT_EXPIRES,
    )
