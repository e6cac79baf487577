"""kombu's Redis transports with three fixes: a dead connection, a poison item, a wrong-typed key.

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
"""

# kombu's internals are untyped; this module calls them by design.
# mypy: disable-error-code="no-untyped-call"
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from queue import Empty
from typing import Any

from kombu.transport import redis, virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads
from redis.exceptions import ResponseError

log = logging.getLogger(__name__)

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


class _ReliableChannel(redis.Channel):
    """The fixes, mixed into kombu's channel classes."""

    Message = _Message
    poison_handler: PoisonHandler | None = None

    def close(self) -> None:
        if self._in_poll:
            try:
                self._brpop_read()
            except Empty:
                pass
            except self.connection_errors:
                pass  # the connection is gone: there is no reply left to read
        super().close()

    def _brpop_read(self, **options: Any) -> bool:
        # kombu's own read (kombu 5.7), with the item checked before it is delivered.
        try:
            try:
                reply = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            except ResponseError as exc:
                if "WRONGTYPE" not in str(exc):
                    raise
                self._move_aside_wrong_types()
                raise Empty() from None
            if not reply:
                raise Empty()
            dest, item = reply
            queue = bytes_to_str(dest).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(queue)
            self._deliver_checked(item, queue)
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]
            self._flush_brpop_reauth()

    def _deliver_checked(self, item: bytes | str, queue: str) -> None:
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
            self.client.rpush(self._q_for_pri(queue, 0), item)
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


class Transport(redis.Transport):
    """``redis://``, ``rediss://`` and ``redis+socket://`` brokers."""

    Channel = Channel


class SentinelChannel(_ReliableChannel, redis.SentinelChannel):
    """:class:`kombu.transport.redis.SentinelChannel` with the fixes of this module."""

    from_transport_options: tuple[str, ...] = (*redis.SentinelChannel.from_transport_options, "poison_handler")  # type: ignore[assignment]


class SentinelTransport(redis.SentinelTransport):
    """``sentinel://`` brokers."""

    Channel = SentinelChannel
