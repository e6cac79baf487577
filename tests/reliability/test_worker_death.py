"""Scenarios 1 and 2: a worker node, or one prefork child, SIGKILLed mid-step.

A dead worker costs seconds, not the visibility timeout, and repeats no side effect.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from orchestrator.engine.records import RunStatus
from tests.integration.conftest import LEASE, Orchestra

pytestmark = pytest.mark.integration


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
    orchestra.wait_started("long")
    doomed.kill()  # SIGKILL to main process and children: no ack, no requeue
    killed_at = time.monotonic()
    orchestra.worker(name="rescuer", concurrency=1)
    record = orchestra.wait(run_id, timeout=60)
    recovered_in = time.monotonic() - killed_at
    assert record.status is RunStatus.SUCCEEDED
    assert orchestra.effects() == {"before": 1, "long": 1, "after": 1}
    assert record.steps["long"].worker == f"rescuer@{orchestra.prefix}"
    print(f"\nnode SIGKILL: run finished {recovered_in:.1f}s after the kill")
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
    orchestra.wait_started("long")
    (child,) = worker.children()
    os.kill(child, signal.SIGKILL)
    killed_at = time.monotonic()
    record = orchestra.wait(run_id, timeout=60)
    assert record.status is RunStatus.SUCCEEDED
    assert orchestra.started().count("long") == 2  # ran again after the kill...
    assert orchestra.effects()["long"] == 1  # ...but its side effect happened once
    # Billiard notices the dead child within its 5 s maintenance tick; the lease (3 s here)
    # is released before the requeue, so the redelivery does not wait for it to expire.
    recovered_in = time.monotonic() - killed_at
    print(f"\nprefork child SIGKILL: run finished {recovered_in:.1f}s after the kill")
    assert recovered_in < LEASE + 8
