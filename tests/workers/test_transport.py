"""Acks that ride with the next delivery's pipeline (``workers/transport.py``), on real workers."""

from __future__ import annotations

import json
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


def test_every_ack_reaches_redis_when_the_worker_goes_idle(orchestra: Orchestra) -> None:
    orchestra.worker()
    run_id = orchestra.submit(CHAIN)
    assert orchestra.wait(run_id).status is RunStatus.SUCCEEDED
    assert _settles(orchestra) == (0, 0)  # the last acks went out on the timer, no delivery after them


def test_a_warm_shutdown_sends_the_acks_it_holds_and_restores_nothing_acked(orchestra: Orchestra) -> None:
    worker = orchestra.worker()
    run_id = orchestra.submit(CHAIN)
    assert orchestra.wait(run_id).status is RunStatus.SUCCEEDED
    worker.stop()  # SIGTERM at once: whatever is still buffered goes out before the channel closes
    assert _unacked(orchestra) == (0, 0)
    assert _queued(orchestra) == [], worker.log.read_text(errors="replace")[-3000:]  # nothing put back
