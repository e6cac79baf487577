"""Shutting a worker down mid-step: the step finishes or is handed back, never lost.

A warm shutdown (SIGTERM to the worker's main process: ``docker stop``, ``kill PID``, systemd
with ``KillMode=mixed``) stops consuming and waits for running tasks: the step finishes on the
leaving worker and the next steps run on another one. SIGTERM to the whole process group
(systemd's default ``KillMode=control-group``, or ``kill -TERM -PGID``) also kills the pool
processes at once: the step is lost by that worker, its message comes back, and another worker
runs it again; its side effect still happens once.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from orchestrator.engine.records import RunRecord, RunStatus
from tests.integration.conftest import WorkerProcess
from tests.reliability.conftest import Harness, wait_until

pytestmark = pytest.mark.integration

STEP_SECONDS = 4.0


def _submit(orchestra: Harness, name: str) -> str:
    return orchestra.submit(
        {
            "workflow": name,
            "steps": {
                "before": {"task": "t.effect", "args": {"name": "before"}},
                "long": {"task": "t.block", "needs": ["before"], "args": {"name": "long", "seconds": STEP_SECONDS}},
                "after": {"task": "t.effect", "needs": ["long"], "args": {"name": "after"}},
            },
        }
    )


def test_warm_shutdown_mid_step_finishes_the_step(
    harness: Callable[..., Harness], recovery: Callable[..., None]
) -> None:
    orchestra = harness()
    leaving = orchestra.worker(name="leaving", concurrency=1)
    run_id = _submit(orchestra, "warm-shutdown")
    wait_until(lambda: "long" in orchestra.started(), 20, "the long step started")
    os.kill(leaving.process.pid, signal.SIGTERM)  # the main process only: a warm shutdown
    signalled = time.monotonic()
    staying = orchestra.worker(name="staying", concurrency=1)
    record = orchestra.wait(run_id, timeout=60)
    finished = time.monotonic()

    assert record.status is RunStatus.SUCCEEDED, orchestra.logs()
    assert orchestra.effects() == {"before": 1, "long": 1, "after": 1}
    assert orchestra.started() == ["long"], "the step ran again"
    assert record.steps["long"].worker == orchestra.hostname(leaving)  # finished where it ran...
    assert record.steps["after"].worker == orchestra.hostname(staying)  # ...and the run went on elsewhere
    assert leaving.process.wait(30) == 0
    assert "Warm shutdown" in leaving.log.read_text(errors="replace")
    recovery(
        finished - signalled,
        "SIGTERM -> run finished (includes the rest of the step)",
        step_seconds=STEP_SECONDS,
    )


@dataclass
class HandBack:
    """What happened when the worker running the long step got SIGTERM on its whole process group."""

    record: RunRecord
    doomed: WorkerProcess
    other: WorkerProcess
    handed_back_in: float


def _sigterm_group_mid_step(orchestra: Harness, name: str, restart_within: float = 60.0) -> HandBack:
    first = orchestra.worker(name="first", concurrency=1)
    second = orchestra.worker(name="second", concurrency=1)
    run_id = _submit(orchestra, name)
    wait_until(lambda: "long" in orchestra.started(), 20, "the long step started")
    running = orchestra.coordinator.get(run_id).steps["long"]
    doomed, other = (first, second) if running.worker == orchestra.hostname(first) else (second, first)
    os.killpg(doomed.process.pid, signal.SIGTERM)  # main process and pool processes alike
    signalled = time.monotonic()
    again = wait_until(lambda: orchestra.started().count("long") == 2, restart_within, "the long step started again")
    record = orchestra.wait(run_id, timeout=60)
    assert doomed.process.wait(30) is not None
    return HandBack(record, doomed, other, again - signalled)


def test_sigterm_to_the_process_group_hands_the_step_back(
    harness: Callable[..., Harness], recovery: Callable[..., None]
) -> None:
    # A long lease, so that "handed back at once" cannot be confused with "recovered after the
    # lease expired" on a loaded machine: the main process releases the dead process's lease
    # before the message is requeued (workers/request.py), the sweeper need not wait for it.
    lease = 12.0
    orchestra = harness(ORCH_WORKER__LEASE=f"{lease:g}")
    outcome = _sigterm_group_mid_step(orchestra, "group-sigterm", restart_within=lease / 2)

    assert outcome.record.status is RunStatus.SUCCEEDED, orchestra.logs()
    assert orchestra.effects() == {"before": 1, "long": 1, "after": 1}
    long = outcome.record.steps["long"]
    assert long.worker == orchestra.hostname(outcome.other)
    assert long.attempts == 1  # the same attempt, run again: not a retry
    recovery(outcome.handed_back_in, "SIGTERM -> step running again on the other worker", lease=lease)
