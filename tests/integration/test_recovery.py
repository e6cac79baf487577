"""A dead worker costs seconds, not the visibility timeout, and repeats no side effect."""

from __future__ import annotations

import os
import signal
import time

import pytest

from orchestrator.runs import RunStatus
from tests.integration.conftest import LEASE, Orchestra

pytestmark = pytest.mark.integration


def _wait_started(orchestra: Orchestra, name: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while name not in orchestra.started():
        assert time.monotonic() < deadline, f"{name} never started"
        time.sleep(0.02)


def test_worker_node_killed_mid_step_is_recovered_by_another_worker(orchestra: Orchestra) -> None:
    doomed = orchestra.worker(name="doomed", concurrency=1)
    run_id = orchestra.submit(
        {
            "workflow": "survivor",
            "steps": {
                "before": {"task": "t.effect", "args": {"name": "before"}},
                "long": {"task": "t.block", "needs": ["before"], "args": {"name": "long", "seconds": 2.0}},
                "after": {"task": "t.effect", "needs": ["long"], "args": {"name": "after"}},
            },
        }
    )
    _wait_started(orchestra, "long")
    doomed.kill()  # SIGKILL to main process and children: no ack, no requeue
    killed_at = time.monotonic()
    orchestra.worker(name="rescuer", concurrency=1)
    record = orchestra.wait(run_id, timeout=60)
    recovered_in = time.monotonic() - killed_at
    assert record.status is RunStatus.SUCCEEDED
    assert orchestra.effects() == {"before": 1, "long": 1, "after": 1}
    assert record.steps["long"].worker == f"rescuer@{orchestra.prefix}"
    assert recovered_in < 30, f"recovery took {recovered_in:.1f}s"  # not the visibility timeout


def test_prefork_child_killed_mid_task_is_redelivered_at_once(orchestra: Orchestra) -> None:
    worker = orchestra.worker(name="solo-node", concurrency=1)
    run_id = orchestra.submit(
        {
            "workflow": "child",
            "steps": {
                "long": {"task": "t.block", "args": {"name": "long", "seconds": 1.0}},
                "after": {"task": "t.effect", "needs": ["long"], "args": {"name": "after"}},
            },
        }
    )
    _wait_started(orchestra, "long")
    (child,) = worker.children()
    os.kill(child, signal.SIGKILL)
    killed_at = time.monotonic()
    record = orchestra.wait(run_id, timeout=60)
    assert record.status is RunStatus.SUCCEEDED
    assert orchestra.started().count("long") == 2  # ran again after the kill...
    assert orchestra.effects()["long"] == 1  # ...but its side effect happened once
    # Billiard notices the dead child within its 5 s maintenance tick; the lease (3 s here)
    # is released before the requeue, so the redelivery does not wait for it to expire.
    assert time.monotonic() - killed_at < LEASE + 8


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
