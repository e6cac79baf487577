"""kombu's Redis transports with one fix: closing a channel whose connection has just died.

When the broker connection drops while a BRPOP is in flight, kombu's ``Channel.close`` first
reads that BRPOP's reply. On the dead connection the read raises, so ``close`` stops before the
channel is marked closed. Celery's consumer then closes the connection a second time, after
``collect()`` detached the transport, and the second ``close`` fails with ``AttributeError:
'NoneType' object has no attribute 'hostname'`` while restoring unacked messages: an
"Unrecoverable error" that shuts the worker down instead of reconnecting (celery 5.7.0, kombu
5.7.0). Here the read's connection error ends the read, as ``Empty`` does, and the close goes on.
"""

from __future__ import annotations

from queue import Empty

from kombu.transport import redis


class _ClosesAfterConnectionLoss(redis.Channel):
    def close(self) -> None:
        if self._in_poll:
            try:
                self._brpop_read()  # type: ignore[no-untyped-call]
            except Empty:
                pass
            except self.connection_errors:
                pass  # the connection is gone: there is no reply left to read
        super().close()  # type: ignore[no-untyped-call]


class Channel(_ClosesAfterConnectionLoss):
    """:class:`kombu.transport.redis.Channel` that survives a dropped connection."""


class Transport(redis.Transport):
    """``redis://`` and ``rediss://`` brokers."""

    Channel = Channel


class SentinelChannel(_ClosesAfterConnectionLoss, redis.SentinelChannel):
    """:class:`kombu.transport.redis.SentinelChannel` that survives a dropped connection."""


class SentinelTransport(redis.SentinelTransport):
    """``sentinel://`` brokers."""

    Channel = SentinelChannel
