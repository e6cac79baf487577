"""The workers' transport on real workers (``workers/transport.py``).

No unacked copy of a step message; the acks of other messages ride with the next delivery's pipeline;
one ``BLMPOP`` takes as many messages as the prefetch has room for (``BRPOP`` where the server has none).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from kombu import Connection, Consumer, Exchange, Producer, Queue
from redis import Redis

from orchestrator.engine.records import RunStatus
from orchestrator.store.keys import Keys
from tests.integration.conftest import Orchestra, RedisServer, running_orchestra
from workers.transport import Transport

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


WIDE = {
    "workflow": "wide",
    "steps": {f"r{i}": {"task": "t.block", "args": {"name": f"r{i}", "seconds": 1.0}} for i in range(8)},
}


def _calls(client: Redis, command: str) -> int:
    return int(client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


@pytest.fixture
def private(redis_server: Callable[..., RedisServer], key_prefix: str) -> Iterator[Callable[..., Orchestra]]:
    """An orchestra on a Redis server of the test's own (its command counts are this test's alone)."""
    made: list[Any] = []

    def start(*server_args: str) -> Orchestra:
        server = redis_server(*server_args)
        client = Redis.from_url(server.url, decode_responses=True)
        context = running_orchestra(server.url, key_prefix, client, lease=60.0)
        made.append(context)
        return context.__enter__()

    yield start
    for context in reversed(made):
        context.__exit__(None, None, None)


def test_one_pop_takes_as_many_messages_as_the_prefetch_has_room_for(private: Callable[..., Orchestra]) -> None:
    """Eight ready steps and a worker with room for eight (threads 8, prefetch 1 a thread): one
    ``BLMPOP`` brings all of them, where kombu's ``BRPOP`` takes one a round trip."""
    orchestra = private()
    run_id = orchestra.submit(WIDE)  # queued before the worker polls
    orchestra.worker(pool="threads", concurrency=8)
    deadline = time.monotonic() + 20
    while len(orchestra.started()) < 8:
        assert time.monotonic() < deadline, orchestra.started()
        time.sleep(0.02)
    assert (_calls(orchestra.redis, "blmpop"), _calls(orchestra.redis, "brpop")) == (1, 0)
    assert orchestra.wait(run_id).status is RunStatus.SUCCEEDED
    assert orchestra.effects() == {f"r{i}": 1 for i in range(8)}


def test_a_server_without_blmpop_is_served_one_brpop_a_message(private: Callable[..., Orchestra]) -> None:
    """Redis before 7.0 (or an ACL without the command): the refusal pops nothing, and the worker
    goes on with kombu's ``BRPOP``."""
    orchestra = private("--rename-command", "BLMPOP", "")
    run_id = orchestra.submit(WIDE)
    worker = orchestra.worker(pool="threads", concurrency=8)
    assert orchestra.wait(run_id).status is RunStatus.SUCCEEDED
    assert orchestra.effects() == {f"r{i}": 1 for i in range(8)}
    assert _calls(orchestra.redis, "brpop") >= 8
    assert "refused BLMPOP" in worker.log.read_text(errors="replace")


@contextmanager
def kombu_channel(redis_url: str, key_prefix: str) -> Iterator[tuple[Connection, Any, Queue, Producer]]:
    """A kombu connection on the workers' transport, a channel, a queue declared on it and a producer."""
    options = {"global_keyprefix": f"{key_prefix}:broker:"}
    queue = Queue(f"{key_prefix}-q", Exchange(f"{key_prefix}-x", type="direct"), routing_key="k")
    with Connection(redis_url, transport=Transport, transport_options=options) as connection:
        channel = connection.channel()
        queue(channel).declare()
        yield connection, channel, queue, Producer(channel, exchange=queue.exchange, routing_key="k", serializer="json")


def test_what_one_pop_took_and_did_not_deliver_goes_back_next_in_line(redis_url: str, key_prefix: str) -> None:
    """A delivery that raises (the broker gone while a message was being tracked) puts the messages
    of the same pop not delivered yet back where they were, in their order."""
    with kombu_channel(redis_url, key_prefix) as (connection, channel, queue, producer):
        for n in range(5):
            producer.publish({"n": n}, declare=[queue])
        seen: list[int] = []

        def receive(body: dict[str, int], message: Any) -> None:
            seen.append(body["n"])
            if body["n"] == 1:
                raise ConnectionError("the broker went away")
            message.ack()

        with Consumer(channel, [queue], callbacks=[receive], accept=["json"]) as consumer:
            consumer.qos(prefetch_count=5)
            with pytest.raises(ConnectionError):
                connection.drain_events(timeout=5)
            assert seen == [0, 1]  # one pop of five; the second delivery raised
            seen.clear()
            connection.drain_events(timeout=5)
        assert seen == [2, 3, 4]  # back on the queue, next in line and in order


def test_a_pop_cut_off_by_a_lost_connection_leaves_the_next_pop_its_own_reply(redis_url: str, key_prefix: str) -> None:
    """kombu's health check drops a connection whose pop never answered and pops again on a new one;
    with room for one by then, that pop is a ``BRPOP``, and its reply is read as one."""
    with kombu_channel(redis_url, key_prefix) as (connection, channel, queue, producer):
        seen: list[int] = []

        def receive(body: dict[str, int], message: Any) -> None:
            seen.append(body["n"])
            message.ack()

        with Consumer(channel, [queue], callbacks=[receive], accept=["json"]) as consumer:
            consumer.qos(prefetch_count=5)
            with pytest.raises(socket.timeout):
                connection.drain_events(timeout=0.2)  # a BLMPOP for five, in flight on an empty queue
            channel.client.connection.disconnect()  # no reply read: kombu forgets the pop in flight
            assert not channel._in_poll
            consumer.qos(prefetch_count=1)
            producer.publish({"n": 7}, declare=[queue])
            connection.drain_events(timeout=5)  # a BRPOP now: room for one
            assert seen == [7]
            for n in range(3):
                producer.publish({"n": n}, declare=[queue])
            consumer.qos(prefetch_count=5)
            connection.drain_events(timeout=5)  # room again: one BLMPOP for the three
            assert seen == [7, 0, 1, 2]
