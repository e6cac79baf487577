"""Redis redelivers what stays unacknowledged past the visibility timeout: never a step message.

kombu's Redis transport keeps an unacked copy of each delivered message, scored by when it was
fetched, and puts it back on the queue once that is older than the visibility timeout, whether
the task is still running (celery#5935) or is a retry waiting for its countdown (kombu#337). A
plain Celery deployment then runs the work again, once per redelivery. Our workers keep no copy
of a step message (the run store's outbox and leases guard it, ``workers/transport.py``), so
there is nothing to redeliver. Here the workers run with a 3 s visibility timeout and kombu's
restore scan every second: a plain task sent beside the steps is redelivered while it runs, and
every step message is received exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from orchestrator.engine.records import RunStatus
from tests.reliability.conftest import Harness, dropped, received, received_ids, timestamp

pytestmark = pytest.mark.integration

VISIBILITY_TIMEOUT = 3.0
LEASE = 60.0
"""A lease no machine's pause outlives: a message the sweeper publishes again (a guard that ran out
before its claim, on a loaded machine) is at-least-once delivery, not the redelivery these tests
look for."""
SHORT_VISIBILITY = {
    # Settings refuse a visibility timeout shorter than the default step timeout: lower that too.
    "ORCH_WORKER__VISIBILITY_TIMEOUT": f"{VISIBILITY_TIMEOUT:g}",
    "ORCH_DEFAULTS__TIMEOUT": "2",
    # Scan for overdue unacked messages every second instead of every 10 x 10 s.
    "ORCH_TEST_BROKER_TRANSPORT": json.dumps({"unacked_restore_interval": 1, "unacked_restore_throttle": 1}),
}


def test_step_longer_than_visibility_timeout_runs_once(
    harness: Callable[..., Harness], recovery: Callable[..., None]
) -> None:
    orchestra = harness(lease=LEASE, **SHORT_VISIBILITY)
    worker = orchestra.worker(name="vt", concurrency=3)
    long_seconds = 3 * VISIBILITY_TIMEOUT
    # Beside the steps, a task that is not a step, as long: kombu's copy of it is redelivered.
    plain = orchestra.app.send_task("t.block", kwargs={"name": "plain", "seconds": long_seconds}, queue="default")
    run_id = orchestra.submit(
        {
            "workflow": "long-step",
            "steps": {
                "before": {"task": "t.effect", "args": {"name": "before"}},
                "long": {
                    "task": "t.block",
                    "needs": ["before"],
                    "timeout": "30s",  # its own limit, well past the visibility timeout
                    "args": {"name": "long", "seconds": long_seconds},
                },
                "after": {"task": "t.effect", "needs": ["long"], "args": {"name": "after"}},
            },
        }
    )
    record = orchestra.wait(run_id, timeout=60)

    assert record.status is RunStatus.SUCCEEDED
    assert {k: v for k, v in orchestra.effects().items() if k != "plain"} == {"before": 1, "long": 1, "after": 1}
    assert orchestra.started().count("long") == 1, "the long step's task ran more than once"
    long = record.steps["long"]
    assert long.attempts == 1
    # The scan ran: the plain task's copy came back while it ran, and was received again...
    assert received(worker, plain.id) >= 2, orchestra.logs()
    # ...and the long step's message, with no copy, was received once; no claim had a copy to drop.
    assert long.task_id is not None
    assert received(worker, long.task_id) == 1, orchestra.logs()
    assert dropped(worker) == []
    # Recovery: nothing to recover. What a redelivery would cost is the delay it adds to the run.
    started, ended = timestamp(long.started_at), timestamp(record.finished_at)
    added = ended - started - long_seconds
    recovery(
        added,
        "delay added after the long step's nominal end",
        redeliveries=received(worker, long.task_id) - 1,
        plain_task_redeliveries=received(worker, plain.id) - 1,
    )


def test_retry_backoff_longer_than_visibility_timeout_runs_once_per_attempt(
    harness: Callable[..., Harness], recovery: Callable[..., None]
) -> None:
    orchestra = harness(lease=LEASE, **SHORT_VISIBILITY)
    first = orchestra.worker(name="vt1", concurrency=1)
    second = orchestra.worker(name="vt2", concurrency=1)
    backoff = 2.5 * VISIBILITY_TIMEOUT
    run_id = orchestra.submit(
        {
            "workflow": "slow-retry",
            "steps": {
                "flaky": {
                    "task": "t.flaky",
                    "timeout": "30s",
                    "retry": {"max_attempts": 3, "backoff": "fixed", "delay": f"{backoff:g}s", "jitter": False},
                    "args": {"name": "flaky", "failures": 2},
                },
                "after": {"task": "t.effect", "needs": ["flaky"], "args": {"name": "after"}},
            },
        }
    )
    record = orchestra.wait(run_id, timeout=60)

    assert record.status is RunStatus.SUCCEEDED
    # Three attempts (two failures, one success), each run exactly once.
    assert record.steps["flaky"].attempts == 3
    assert orchestra.effects() == {"attempts-flaky": 3, "flaky": 1, "after": 1}
    times = [float(t) for t in orchestra.redis.lrange(f"{orchestra.prefix}:effects:times-flaky", 0, -1)]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert all(gap >= backoff - 0.5 for gap in gaps), f"an attempt ran before its backoff ended: {gaps}"
    # The retry messages sat unacknowledged (waiting for their countdown) past the visibility
    # timeout, with no copy in Redis to redeliver: each was received once.
    counts: dict[str, int] = {}
    for worker in (first, second):
        for task_id, count in received_ids(worker, "t.flaky").items():
            counts[task_id] = counts.get(task_id, 0) + count
    assert len(counts) == 3, counts  # the first message and two retries
    assert sum(counts.values()) == 3, f"a retry message was redelivered: {counts}\n{orchestra.logs()}"
    assert dropped(first) + dropped(second) == []
    added = timestamp(record.finished_at) - timestamp(record.created_at) - 2 * backoff
    recovery(
        added,
        "delay added beyond the two backoffs",
        redeliveries=sum(counts.values()) - 3,
        dropped=len(dropped(first) + dropped(second)),
    )
