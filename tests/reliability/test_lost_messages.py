"""A message lost between its publish and its claim is published again: nothing waits for the visibility timeout.

Where a worker killed while it held messages it had not started yet leaves them: nowhere (the
workers keep no unacked copy of a step message, ``workers/transport.py``; kombu's copy would come
back only after the visibility timeout, 2 h here). The test takes the messages off the queue
itself, which is the same loss without the timing: the step's outbox guard stays
until a delivery claims it, and a fanned-out step's watchdog until its items make progress.
"""

from __future__ import annotations

import time

import pytest

from orchestrator.engine.records import RunStatus
from tests.integration.conftest import LEASE, Orchestra

pytestmark = pytest.mark.integration


def _drain(orchestra: Orchestra, queue: str = "default") -> int:
    """Take every message off the queue, as a worker that died holding them would."""
    key = orchestra.store.keys.queue(queue)
    return int(orchestra.redis.delete(key))


def test_a_lost_step_message_is_published_again(orchestra: Orchestra) -> None:
    run_id = orchestra.submit({"workflow": "lost", "steps": {"a": {"task": "t.effect", "args": {"name": "a"}}}})
    assert _drain(orchestra) == 1  # the root's message is gone; no worker ever saw it
    lost_at = time.monotonic()
    orchestra.worker(concurrency=1)
    record = orchestra.wait(run_id, timeout=LEASE * 10)
    assert record.status is RunStatus.SUCCEEDED and orchestra.effects()["a"] == 1
    print(f"\nlost step message: run finished {time.monotonic() - lost_at:.1f}s after the loss (lease {LEASE:g}s)")


def test_lost_item_messages_are_published_again(orchestra: Orchestra) -> None:
    data = {
        "workflow": "lost-items",
        "params": {"items": {"type": "array", "default": [1, 2, 3, 4]}},
        "steps": {"each": {"task": "t.square", "for_each": "${params.items}", "args": {"x": "${item}"}}},
    }
    run_id = orchestra.submit(data)
    first = orchestra.worker(name="fanner", concurrency=1)
    deadline = time.monotonic() + 20
    while orchestra.coordinator.get(run_id).steps["each"].items is None:  # the step fanned out
        assert time.monotonic() < deadline
        time.sleep(0.01)
    first.kill()  # it may have taken an item or two; the rest wait on the queue...
    _drain(orchestra)  # ...and are lost
    lost_at = time.monotonic()
    orchestra.worker(name="second", concurrency=2)
    record = orchestra.wait(run_id, timeout=LEASE * 20)
    assert record.status is RunStatus.SUCCEEDED
    assert record.steps["each"].output == [1, 4, 9, 16]
    assert all(orchestra.effects()[f"square-{x}"] == 1 for x in (1, 2, 3, 4))
    print(f"\nlost item messages: run finished {time.monotonic() - lost_at:.1f}s after the loss (lease {LEASE:g}s)")
