"""A killed worker loses nothing, at the default lease, when every step has an idempotency key.

The recovered execution of a step takes over its own idempotency key at once: the key belongs to
an execution (the unit and the task id that claimed it), not to the unit alone, so the new
execution does not wait for the dead one's key. Each side effect happens exactly once and the run
succeeds; the recovery time is printed.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest

from config import WorkerSettings
from orchestrator.engine.records import RunStatus
from tests.reliability.conftest import Harness, wait_until

pytestmark = pytest.mark.integration

DEFAULT_LEASE = WorkerSettings().lease
STEPS = 12
SECONDS = 3.0


def _independent_steps() -> dict[str, Any]:
    return {
        "workflow": "keyed",
        "steps": {
            f"s{i}": {
                "task": "t.block",
                "args": {"name": f"s{i}", "seconds": SECONDS},
                "idempotency_key": "${run.id}-s" + str(i),
            }
            for i in range(STEPS)
        },
    }


def _fan_out(count: int) -> dict[str, Any]:
    return {
        "workflow": "keyed-items",
        "params": {"items": {"type": "array"}},
        "steps": {
            "each": {
                "task": "t.block",
                "for_each": "${params.items}",
                "args": {"name": "${item}", "seconds": SECONDS},
                "idempotency_key": "${run.id}-item-${item}",
            },
            "after": {
                "task": "t.effect",
                "needs": ["each"],
                "args": {"name": "after"},
                "idempotency_key": "${run.id}-after",
            },
        },
    }


def _harness(harness: Callable[..., Harness]) -> Harness:
    # The default lease (15 s), as production runs: the sweeper interval stays the test's 0.5 s.
    return harness(ORCH_WORKER__LEASE=f"{DEFAULT_LEASE:g}")


def _restarted(orchestra: Harness) -> bool:
    """Whether a step interrupted by the kill has started again (its name is in ``started`` twice)."""
    started = orchestra.started()
    return len(set(started)) < len(started)


def _kill_node_mid_steps(
    orchestra: Harness, data: dict[str, Any], names: list[str], params: dict[str, Any] | None = None
) -> tuple[float, Any]:
    doomed = orchestra.worker(name="doomed", concurrency=4)
    run_id = orchestra.submit(data, params)
    wait_until(lambda: len(orchestra.started()) >= 4, 30, "four keyed steps started")
    doomed.kill()  # SIGKILL to the whole process group: no ack, no requeue
    killed = time.monotonic()
    orchestra.worker(name="rescuer", concurrency=4)
    recovered = wait_until(lambda: _restarted(orchestra), DEFAULT_LEASE * 3, "a killed step started again") - killed
    record = orchestra.wait(run_id, timeout=DEFAULT_LEASE * 4 + 60)
    assert record.status is RunStatus.SUCCEEDED, orchestra.logs()
    effects = orchestra.effects()
    assert {name: effects.get(name, 0) for name in names} == dict.fromkeys(names, 1)
    return recovered, record


def _kill_child_mid_step(
    orchestra: Harness, data: dict[str, Any], names: list[str], params: dict[str, Any] | None = None
) -> tuple[float, Any]:
    worker = orchestra.worker(name="solo", concurrency=2)
    run_id = orchestra.submit(data, params)
    wait_until(lambda: len(orchestra.started()) >= 2, 30, "two keyed steps started")
    victim = worker.children()[0]
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    recovered = wait_until(lambda: _restarted(orchestra), DEFAULT_LEASE * 3, "the killed step started again") - killed
    record = orchestra.wait(run_id, timeout=DEFAULT_LEASE * 4 + 60)
    assert record.status is RunStatus.SUCCEEDED, orchestra.logs()
    effects = orchestra.effects()
    assert {name: effects.get(name, 0) for name in names} == dict.fromkeys(names, 1)
    return recovered, record


def test_node_sigkill_with_idempotency_keys_loses_nothing(
    harness: Callable[..., Harness], recovery: Callable[..., None]
) -> None:
    names = [f"s{i}" for i in range(STEPS)]
    recovered, record = _kill_node_mid_steps(_harness(harness), _independent_steps(), names)
    assert all(step.attempts == 1 for step in record.steps.values())  # a recovery is not a retry
    recovery(recovered, "node SIGKILL -> a killed keyed step running again (12 steps)", lease=DEFAULT_LEASE)


def test_child_sigkill_with_idempotency_keys_loses_nothing(
    harness: Callable[..., Harness], recovery: Callable[..., None]
) -> None:
    names = [f"s{i}" for i in range(STEPS)]
    recovered, record = _kill_child_mid_step(_harness(harness), _independent_steps(), names)
    assert all(step.attempts == 1 for step in record.steps.values())
    recovery(recovered, "prefork child SIGKILL -> its keyed step running again (12 steps)", lease=DEFAULT_LEASE)


def test_node_sigkill_mid_keyed_for_each_loses_nothing(
    harness: Callable[..., Harness], recovery: Callable[..., None]
) -> None:
    items = [f"i{n}" for n in range(8)]
    recovered, record = _kill_node_mid_steps(
        _harness(harness), _fan_out(len(items)), [*items, "after"], {"items": items}
    )
    assert record.steps["each"].output == items
    recovery(recovered, "node SIGKILL -> a killed keyed item running again (8 items)", lease=DEFAULT_LEASE)


def test_child_sigkill_mid_keyed_for_each_loses_nothing(
    harness: Callable[..., Harness], recovery: Callable[..., None]
) -> None:
    items = [f"i{n}" for n in range(8)]
    recovered, record = _kill_child_mid_step(
        _harness(harness), _fan_out(len(items)), [*items, "after"], {"items": items}
    )
    assert record.steps["each"].output == items
    recovery(recovered, "prefork child SIGKILL -> its keyed item running again (8 items)", lease=DEFAULT_LEASE)
