"""kombu's Redis transports with three fixes and three savings: no step message copy, acks ride along, one pop.

1. **Closing a channel whose connection has just died.** When the broker connection drops while a
   BRPOP is in flight, kombu's ``Channel.close`` first reads that BRPOP's reply. On the dead
   connection the read raises, so ``close`` stops before the channel is marked closed. Celery's
   consumer then closes the connection a second time, after ``collect()`` detached the transport,
   and the second ``close`` fails with ``AttributeError: 'NoneType' object has no attribute
   'hostname'`` while restoring unacked messages: an "Unrecoverable error" that shuts the worker
   down instead of reconnecting (celery 5.7.0, kombu 5.7.0). Here the read's connection error
   ends the read, as ``Empty`` does, and the close goes on.
2. **An item on a queue that is not a kombu envelope** (not JSON, no ``properties``, a body that
   does not decode) raised out of the event loop and killed the worker. Here it is handed to the
   ``poison_handler`` transport option (the worker app records it as a dead letter with its raw
   bytes) and the worker goes on.
3. **A queue key of another Redis type** (``WRONGTYPE``) made every BRPOP of the worker fail and
   the worker exit. Here the offending keys are renamed aside (``KEY.wrongtype.TIMESTAMP``, kept
   for inspection), loudly logged, and consumption goes on.

And the savings. kombu's Redis ack emulation writes an unacked copy of each delivered message
(``MULTI ZADD HSET EXEC``) and removes it on ack (``MULTI ZREM HDEL EXEC``): two round trips per
task, the second one after the task, so that a visibility timeout after a worker died the copy
is delivered again.

**A step message has no copy.** The run store already guards it: its outbox entry until a
claim, then the claim's lease, each published again by the sweeper once it runs out (about
``ORCH_WORKER__LEASE`` seconds, where the copy waits ``ORCH_WORKER__VISIBILITY_TIMEOUT``). So
the worker keeps a delivered step message in its own memory only, which is where kombu restores
it from in the two cases that need it: a rejected message put back (its pool process died,
``reject_on_worker_lost``) and the prefetched messages of a channel that closes (a warm
shutdown), each back on its queue at once, marked redelivered, as kombu's copy would be. A
worker killed outright, or cut off from the broker as it closes, loses what it held; the
outbox publishes it again, as it publishes a message lost on its way to the queue. The
worker's main process spends no round trip on a step message but its ``BRPOP`` (the copy's
write was a quarter of its time at full load, ``docs/benchmarks.md``), and a step outliving
the visibility timeout is not delivered a second time. Any other message (hooks, tasks sent by
name) keeps kombu's copy.

**The ack of any other message costs no round trip of its own.** The
removals of acked messages are buffered and sent inside the next delivery's own pipeline, or
by the event loop's timer within :data:`ACK_FLUSH_INTERVAL` when no delivery comes, and before
the channel closes. The prefetch slot is freed at once, as before. What the delay risks: a
worker that dies in that moment leaves acked messages in the unacked hash, and a
visibility timeout later they are delivered again, the window kombu already has between a
task's end and its ack, up to a tenth of a second wider on an idle worker (a busy one sends
them with its next delivery). A hook task would run again, as it would had the kill fallen
between its end and kombu's own ack.

**One pop takes as many messages as the prefetch has room for.** kombu pops one message per
``BRPOP``: a round trip, and a turn of the event loop that registers the socket again, for each.
When the prefetch has room for several (a ``--pool threads`` worker when a fan-in releases a
level, a worker started on a backlog), one ``BLMPOP`` (Redis 7.0) with the same keys in the same
order takes up to that many from the first list that has any, oldest first, and delivers each as
kombu would have one by one (:data:`POP_LIMIT` at most). A burst of 150 ready steps on 32 threads
took 0.15 pops a message instead of 1 (``docs/benchmarks.md``). What changes: a node takes what
its prefetch allows at once, so a burst smaller than one idle node's room goes to that node
rather than one message at a time to every idle node; across several queues kombu's fair cycle
turns once a pop. What a pop brought and did not deliver (the room shrank meanwhile, a delivery
raised, the channel closed) goes back next in line. Should the broker fail between a pop and the
unacked copies of the messages it brought, the steps among them come back from the outbox and the
others are lost: a pop's worth, where ``BRPOP`` risked one. A server that refuses ``BLMPOP``
(before 7.0, an ACL or a proxy without it) pops nothing in its refusal, and the channel goes on
with kombu's ``BRPOP``; with room for one it is kombu's ``BRPOP`` anyway.
"""

# kombu's internals are untyped; this module calls them by design.
# mypy: disable-error-code="no-untyped-call"
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from queue import Empty
from typing import Any

from kombu.transport import redis, virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads
from redis.exceptions import ResponseError

from orchestrator.engine.unit import STEP_TASK

log = logging.getLogger(__name__)

POP_LIMIT = 100
"""Most messages one ``BLMPOP`` takes (its prefetch room, up to this): a bound on one reply's size."""

ACK_FLUSH_INTERVAL = 0.1
"""Seconds an ack may wait for the next delivery's pipeline before it is sent on its own. The
timer costs an idle worker's main process about 0.3% of a core at this rate (3% at 10 ms)."""

PoisonHandler = Callable[[bytes, str, str], None]
"""``handler(raw item, queue, reason)``: keep an item that is not a message (the worker records a dead letter)."""


class _Undecodable(Exception):  # noqa: N818 - internal signal, never leaves this module
    """The envelope popped from a queue cannot become a message."""


class _Message(virtual.Message):
    def __init__(self, payload: Any, channel: Any = None, **kwargs: Any) -> None:
        try:
            super().__init__(payload, channel=channel, **kwargs)
        except Exception as exc:  # KeyError (no properties), binascii.Error (body), TypeError...
            raise _Undecodable(f"{type(exc).__name__}: {exc}") from exc


class QoS(redis.QoS):
    """kombu's ack emulation with acks sent in the next delivery's pipeline, and none for a step
    message, which the run store guards (see the module's docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._acked: list[str] = []
        self._client: Any = None
        self._held: dict[str, Any] = {}  # delivery tag -> step message, delivered and not yet acked

    @contextmanager
    def pipe_or_acquire(self, pipe: Any = None, client: Any = None) -> Iterator[Any]:
        """A pipeline on one client kept for the channel's life: kombu makes a new client for each
        (``conn_or_acquire``), and building one copies redis-py's table of response callbacks,
        about 4% of a busy worker's time (``docs/benchmarks.md``, the profile)."""
        if pipe is not None:
            yield pipe
            return
        if client is None:
            if self._client is None:
                self._client = self.channel._create_client()
            client = self._client
        yield client.pipeline()

    def append(self, message: Any, delivery_tag: str) -> None:
        if (message.headers or {}).get("task") == STEP_TASK:  # guarded by the outbox and its lease
            self._held[delivery_tag] = message
            virtual.QoS.append(self, message, delivery_tag)
            return
        delivery = message.delivery_info
        with self.pipe_or_acquire() as pipe:
            acked = self._take_acked(pipe)
            try:
                pipe.zadd(self.unacked_index_key, {delivery_tag: time.time()}).hset(
                    self.unacked_key,
                    delivery_tag,
                    dumps([message._raw, delivery["exchange"], delivery["routing_key"]]),
                ).execute()
            except BaseException:
                self._acked[:0] = acked  # not sent: the next pipeline sends them
                raise
            virtual.QoS.append(self, message, delivery_tag)

    def ack(self, delivery_tag: str) -> None:
        if self._held.pop(delivery_tag, None) is None:  # a step message has no copy to remove
            self._acked.append(delivery_tag)
        virtual.QoS.ack(self, delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        message = self._held.pop(delivery_tag, None)
        if message is None:
            super().reject(delivery_tag, requeue)
            return
        # Acked here before it is put back: once back, the same message (same tag) may be
        # delivered again at once, and that delivery must not be the one forgotten.
        virtual.QoS.ack(self, delivery_tag)
        if requeue:
            self._put_back(message, leftmost=True)

    def restore_by_tag(self, tag: Any, client: Any = None, leftmost: bool = False) -> None:
        """Put a delivered message back on its queue: a step message from this process's memory
        (it has no copy in Redis), any other from kombu's copy."""
        message = self._held.pop(bytes_to_str(tag), None)
        if message is None:
            super().restore_by_tag(tag, client, leftmost)
            return
        self._put_back(message, client, leftmost)

    def _put_back(self, message: Any, client: Any = None, leftmost: bool = False) -> None:
        """Push a held step message back onto its queue, marked redelivered, as kombu restores its
        copy (``leftmost``: behind the queued messages, as a rejected one goes). A failure is
        logged by kombu and the message is left to the run store's guards."""
        info = message.delivery_info
        with self.pipe_or_acquire(client=client) as pipe:
            self.channel._do_restore_message(message._raw, info["exchange"], info["routing_key"], pipe, leftmost)
            pipe.execute()

    def flush_acks(self) -> None:
        """Send the buffered acks now (the timer, and before the channel closes)."""
        if not self._acked:
            return
        with self.pipe_or_acquire() as pipe:
            acked = self._take_acked(pipe)
            try:
                pipe.execute()
            except BaseException:
                self._acked[:0] = acked
                raise

    def restore_unacked_once(self, stderr: Any = None) -> Any:
        """The channel closes: send the buffered acks first. kombu calls :meth:`restore_unacked` only
        when a delivery is still unacked, so a worker stopped right after its last ack would
        otherwise close with that ack unsent."""
        self._flush_before_closing()
        try:
            return super().restore_unacked_once(stderr)
        finally:
            self._close_client()

    def _close_client(self) -> None:
        """The channel is closing, after kombu disconnected its pools: the connection the last
        acks and restores took from them again is closed too, not left to the garbage collector."""
        client, self._client = self._client, None
        if client is not None:
            client.connection_pool.disconnect()

    def restore_unacked(self, client: Any = None) -> None:
        self._flush_before_closing()
        super().restore_unacked(client)

    def _flush_before_closing(self) -> None:
        try:
            self.flush_acks()
        except Exception:  # the broker is gone: these are delivered again a visibility timeout later
            log.warning("could not send %d acks before closing the channel", len(self._acked), exc_info=True)

    def _take_acked(self, pipe: Any) -> list[str]:
        acked, self._acked = self._acked, []  # one swap: acks from other threads land in the new list
        for tag in acked:
            self._remove_from_indices(tag, pipe)
        return acked


class _ReliableChannel(redis.Channel):
    """The fixes, mixed into kombu's channel classes."""

    Message = _Message
    QoS = QoS
    poison_handler: PoisonHandler | None = None
    _multi_pop = True  # until the server refuses BLMPOP (before Redis 7.0, an ACL without it, a proxy)
    _blmpop_on: Any = None  # the connection a BLMPOP is in flight on (any other pop is a BRPOP)

    def _brpop_start(self, timeout: float | None = None) -> None:
        """Pop as many messages as the prefetch has room for in one ``BLMPOP`` (kombu pops one per
        ``BRPOP``, a round trip and a turn of the event loop each), on the same keys in the same
        order: from the first list that has any, oldest first, so priorities keep kombu's order;
        across several queues kombu's fair cycle turns once a pop, not once a message. With room
        for one, kombu's own ``BRPOP``."""
        self._blmpop_on = None
        room = self.qos.can_consume_max_estimate()
        room = POP_LIMIT if room is None else min(room, POP_LIMIT)
        if room < 2 or not self._multi_pop:
            super()._brpop_start(timeout)
            return
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        keys = [self.global_keyprefix + self._q_for_pri(q, pri) for pri in self.priority_steps for q in queues]
        wait = self.brpop_timeout if timeout is None else timeout
        connection = self.client.connection
        self._in_poll = connection
        self._brpop_sent_at = time.monotonic()  # type: ignore[assignment] # kombu declares it None
        self._blmpop_on = connection
        connection.send_command("BLMPOP", wait or 0, len(keys), *keys, "RIGHT", "COUNT", room)

    def close(self) -> None:
        """What a pop still in flight brought goes back next in line, undelivered: kombu would
        deliver it to a consumer already cancelled (a warm shutdown cancels first), which rejects
        each message to the back of its queue."""
        if self._in_poll:
            try:
                self._push_back(*self._read_pop())
            except Empty:
                pass
            except self.connection_errors:
                pass  # the connection is gone: there is no reply left to read
        super().close()

    def _brpop_read(self, **options: Any) -> bool:
        key, items = self._read_pop(**options)
        queue = key.rsplit(self.sep, 1)[0]
        self._queue_cycle.rotate(queue)
        self._deliver_all(items, key, queue)
        return True

    def _read_pop(self, **options: Any) -> tuple[str, list[bytes]]:
        """The reply of the pop in flight (kombu 5.7's read, for a ``BLMPOP`` too): the list it
        popped (its key without the global prefix) and what it took, oldest first.

        Raises:
            Empty: nothing came: a timeout, a key of another type (renamed aside), a refused
                ``BLMPOP`` (which pops nothing: ``BRPOP`` from then on).
        """
        connection = self.client.connection
        multi, self._blmpop_on = self._blmpop_on is connection, None  # on another connection: a BRPOP's
        try:
            try:
                reply = self.client.parse_response(connection, "BLMPOP" if multi else "BRPOP", **options)
            except self.connection_errors:
                connection.disconnect()
                raise
            except ResponseError as exc:
                if "WRONGTYPE" in str(exc):
                    self._move_aside_wrong_types()
                    raise Empty() from None
                if not multi:
                    raise
                self._multi_pop = False
                log.warning("the broker refused BLMPOP (%s): one BRPOP a message from now on", exc)
                raise Empty() from None
            if not reply:
                raise Empty()
            if multi:  # kombu's client strips the global prefix from a BRPOP's reply only
                dest, items = reply
                return bytes_to_str(dest)[len(self.global_keyprefix) :], list(items)
            dest, item = reply
            return bytes_to_str(dest), [item]
        finally:
            self._in_poll = None  # type: ignore[assignment]
            self._flush_brpop_reauth()

    def _deliver_all(self, items: list[bytes], key: str, queue: str) -> None:
        """Deliver what one pop took, oldest first, while the prefetch has room (it can shrink while
        a pop is in flight). What is left, the room gone or a delivery raising (the broker lost
        while a message was being tracked), goes back next in line."""
        for n, item in enumerate(items):
            if n and not self.qos.can_consume():
                self._push_back(key, items[n:])
                return
            try:
                self._deliver_checked(item, queue, key)
            except BaseException:
                self._push_back(key, items[n + 1 :])
                raise

    def _push_back(self, key: str, items: list[bytes]) -> None:
        """Put popped messages that were never delivered back at the head of their list, in order."""
        if not items:
            return
        try:
            self.client.rpush(key, *reversed(items))
        except Exception:  # the broker is gone: the steps among them come back from the outbox
            log.exception(
                "could not put %d popped messages back on %s; any that are not steps are lost", len(items), key
            )

    def _deliver_checked(self, item: bytes | str, queue: str, key: str) -> None:
        try:
            payload = loads(bytes_to_str(item))
            if not isinstance(payload, dict):
                raise _Undecodable(f"a JSON {type(payload).__name__}, not a message envelope")
            self.connection._deliver(payload, queue)
        except _Undecodable as exc:
            self._poison(item, queue, str(exc))
        except ValueError as exc:  # not JSON
            self._poison(item, queue, f"not JSON: {exc}")
        except ResponseError as exc:
            if "WRONGTYPE" not in str(exc):
                raise
            # The message could not be tracked as unacked: put it back where it came from.
            self.client.rpush(key, item)
            self._move_aside_wrong_types()

    def _poison(self, item: bytes | str, queue: str, reason: str) -> None:
        raw = item if isinstance(item, bytes) else item.encode("utf-8", "surrogateescape")
        handler = self.poison_handler
        try:
            if handler is None:
                raise RuntimeError("no poison_handler transport option")
            handler(raw, queue, reason)
        except Exception:
            log.exception("queue %s: dropped an item that is not a message (%s): %r", queue, reason, raw[:500])

    def _move_aside_wrong_types(self) -> None:
        """Rename our kombu keys that hold the wrong Redis type, so consumption can go on."""
        expected = {self.unacked_key: "hash", self.unacked_index_key: "zset"}
        for queue in self.active_queues:
            for priority in self.priority_steps:
                expected[self._q_for_pri(queue, priority)] = "list"
        for name, kind in expected.items():
            key = self.global_keyprefix + name  # TYPE and RENAME are not prefixed by kombu's client
            found = bytes_to_str(self.client.type(key))
            if found not in (kind, "none"):
                aside = f"{key}.wrongtype.{int(time.time())}"
                self.client.rename(key, aside)
                log.error(
                    "broker key %r held a %s where kombu keeps a %s; renamed it to %r so the worker can go on",
                    key,
                    found,
                    kind,
                    aside,
                )


class Channel(_ReliableChannel):
    """:class:`kombu.transport.redis.Channel` with the fixes of this module."""

    from_transport_options: tuple[str, ...] = (*redis.Channel.from_transport_options, "poison_handler")  # type: ignore[assignment]


def _flush_acks(cycle: Any) -> None:
    for channel in list(getattr(cycle, "_channels", ())):
        qos = channel._qos
        if isinstance(qos, QoS):
            try:
                qos.flush_acks()
            except Exception:  # the connection is down: the acks wait for the next pipeline
                log.debug("could not send %d acks yet", len(qos._acked), exc_info=True)


class _AckFlushing:
    """Registers the acks' timer with the event loop, next to kombu's own timers."""

    def register_with_event_loop(self, connection: Any, loop: Any) -> None:
        super().register_with_event_loop(connection, loop)  # type: ignore[misc]
        cycle = self.cycle  # type: ignore[attr-defined]
        old = getattr(cycle, "_ack_flush_tref", None)
        if old is not None:  # a reconnect: one timer, not one per connection
            old.cancel()
        cycle._ack_flush_tref = loop.call_repeatedly(ACK_FLUSH_INTERVAL, _flush_acks, cycle)


class Transport(_AckFlushing, redis.Transport):
    """``redis://``, ``rediss://`` and ``redis+socket://`` brokers."""

    Channel = Channel


class SentinelChannel(_ReliableChannel, redis.SentinelChannel):
    """:class:`kombu.transport.redis.SentinelChannel` with the fixes of this module."""

    from_transport_options: tuple[str, ...] = (*redis.SentinelChannel.from_transport_options, "poison_handler")  # type: ignore[assignment]


class SentinelTransport(_AckFlushing, redis.SentinelTransport):
    """``sentinel://`` brokers."""

    Channel = SentinelChannel
