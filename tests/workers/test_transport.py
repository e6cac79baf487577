"""The workers' transport on real workers (``workers/transport.py``).

No unacked copy of a step message; the acks of other messages ride with the next delivery's pipeline.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator

import pytest
from redis import Redis

from orchestrator.engine.records import RunStatus
from orchestrator.store.keys import Keys
from tests.integration.conftest import Orchestra, running_orchestra

pytestmark = pytest.mark.integration


@pytest.fixture
def orchestra(redis_url: str, key_prefix: str, redis_client: Redis) -> Iterator[Orchestra]:
    """A lease no machine's pause outlives: a message the sweeper publishes again (a step's guard ran
    out before its claim) is at-least-once delivery, not an ack these tests look for."""
    with running_orchestra(redis_url, key_prefix, redis_client, lease=60.0) as orch:
        yield orch


CHAIN = {
    "workflow": "acked",
    "steps": {
        f"s{i}": {"task": "t.square", "args": {"x": i}, **({"needs": [f"s{i - 1}"]} if i else {})} for i in range(20)
    },
}


def _unacked(orchestra: Orchestra) -> tuple[int, int]:
    broker = Keys(orchestra.prefix).broker_prefix()
    return orchestra.redis.hlen(f"{broker}unacked"), orchestra.redis.zcard(f"{broker}unacked_index")


def _queued(orchestra: Orchestra) -> list[str]:
    """What is left on the default queue: each message's task, id and whether it was delivered before."""
    found = []
    for raw in orchestra.redis.lrange(Keys(orchestra.prefix).queue("default"), 0, -1):
        envelope = json.loads(raw)
        headers, info = envelope.get("headers", {}), envelope.get("properties", {}).get("delivery_info", {})
        found.append(f"{headers.get('task')}[{headers.get('id')}] redelivered={info.get('redelivered', False)}")
    return found


def _settles(orchestra: Orchestra, timeout: float = 2.0) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    while (found := _unacked(orchestra)) != (0, 0) and time.monotonic() < deadline:
        time.sleep(0.01)
    return found


def _plain_tasks(orchestra: Orchestra, count: int = 20, timeout: float = 30.0) -> None:
    """Send ``count`` tasks that are not steps (``t.effect`` by name: kombu's copy and its ack
    apply to them) and wait until each has run."""
    for i in range(count):
        orchestra.app.send_task("t.effect", kwargs={"name": f"p{i}"}, queue="default", ignore_result=True)
    deadline = time.monotonic() + timeout
    while len(orchestra.effects()) < count:
        assert time.monotonic() < deadline, orchestra.effects()
        time.sleep(0.02)


def test_every_ack_reaches_redis_when_the_worker_goes_idle(orchestra: Orchestra) -> None:
    orchestra.worker()
    _plain_tasks(orchestra)
    assert _settles(orchestra) == (0, 0)  # the last acks went out on the timer, no delivery after them
    run_id = orchestra.submit(CHAIN)  # steps among them change nothing
    assert orchestra.wait(run_id).status is RunStatus.SUCCEEDED
    assert _settles(orchestra) == (0, 0)


def test_a_warm_shutdown_sends_the_acks_it_holds_and_restores_nothing_acked(orchestra: Orchestra) -> None:
    worker = orchestra.worker()
    _plain_tasks(orchestra)
    run_id = orchestra.submit(CHAIN)
    assert orchestra.wait(run_id).status is RunStatus.SUCCEEDED
    worker.stop()  # SIGTERM at once: whatever is still buffered goes out before the channel closes
    assert _unacked(orchestra) == (0, 0)
    assert _queued(orchestra) == [], worker.log.read_text(errors="replace")[-3000:]  # nothing put back
    assert set(orchestra.effects().values()) == {1}


def test_a_step_message_leaves_no_copy_in_the_broker_and_any_other_task_leaves_kombus(orchestra: Orchestra) -> None:
    """The run store guards a step message (its outbox entry until the claim, its lease after), so
    the worker writes no unacked copy of it; a task that is not a step keeps kombu's copy."""
    orchestra.worker()
    run_id = orchestra.submit(
        {"workflow": "copies", "steps": {"slow": {"task": "t.block", "args": {"name": "step", "seconds": 1.5}}}}
    )
    orchestra.wait_started("step")
    assert _unacked(orchestra) == (0, 0)  # running, and no copy of its message anywhere in Redis
    orchestra.app.send_task("t.block", kwargs={"name": "plain", "seconds": 1.5}, queue="default", ignore_result=True)
    orchestra.wait_started("plain")
    assert _unacked(orchestra) == (1, 1)  # kombu's copy of the plain task's message, until its ack
    assert orchestra.wait(run_id).status is RunStatus.SUCCEEDED
    assert _settles(orchestra, timeout=10.0) == (0, 0)
    assert orchestra.effects() == {"step": 1, "plain": 1}


def test_a_warm_shutdown_puts_its_prefetched_step_messages_back_at_once(orchestra: Orchestra) -> None:
    """Messages a leaving worker had prefetched go back onto their queue as it closes, from its own
    memory (there is no copy in Redis to restore them from), ahead of the queue, marked redelivered;
    the next worker runs each once."""
    orchestra.extra_env["ORCH_WORKER__PREFETCH_MULTIPLIER"] = "4"
    worker = orchestra.worker(concurrency=1)
    steps = {f"r{i}": {"task": "t.block", "args": {"name": f"r{i}", "seconds": 1.0}} for i in range(4)}
    run_id = orchestra.submit({"workflow": "prefetched", "steps": steps})
    deadline = time.monotonic() + 20
    while len(orchestra.started()) < 1 or orchestra.redis.llen(Keys(orchestra.prefix).queue("default")):
        assert time.monotonic() < deadline, (orchestra.started(), _queued(orchestra))
        time.sleep(0.02)  # one running, the other three prefetched: the queue is empty
    os.kill(worker.process.pid, signal.SIGTERM)  # the main process only: a warm shutdown
    worker.process.wait(30)
    running = orchestra.started()
    back = _queued(orchestra)
    assert len(running) == 1 and len(back) == 3, (running, back, worker.log.read_text(errors="replace")[-3000:])
    assert all(m.startswith("orchestrator.step[") and m.endswith("redelivered=True") for m in back), back
    assert _unacked(orchestra) == (0, 0)
    orchestra.worker(name="w2")
    assert orchestra.wait(run_id).status is RunStatus.SUCCEEDED
    assert orchestra.effects() == {f"r{i}": 1 for i in range(4)}
