"""Publishing step messages: the one place the orchestrator talks to the broker.

The coordinator is given a Celery app (it never imports the worker package) and sends the step
task by name. The messages of one call go out in one round trip, not one each as ``celery.group``
does (celery#1803).

On Redis, each message is built by :mod:`orchestrator.broker.protocol` (the bytes ``send_task``
would publish, Celery's protocol 2 in kombu's envelope) and the lot is ``LPUSH``ed in one
pipeline per batch, without ``send_task``'s per-message overhead (routing, ``saferepr`` of the
arguments, declarations, a retry wrapper, and one ``task-sent`` event message each), which made a
10,000-item fan-out slower than a plain ``celery.group``. When the broker is the run store's own
Redis, the store pushes the messages a completion fires itself, inside its script
(:meth:`CeleryDispatcher.outbound`): one round trip per step fewer. With ``task_send_sent_event``
on, a call's ``task-sent`` events go out as one ``task.multi`` event message, the form Celery's
workers use for buffered task events. The ``before/after_task_publish`` signals are not sent for
step messages (nothing here connects them). A failed pipeline raises like ``send_task`` does; the
run store's outbox re-publishes whatever may not have gone out, and claims drop the duplicates.
Other brokers go through ``send_task`` inside one kombu batch.

Both paths publish a step as Flower should show it: under its real task name (``shadow``, e.g.
``demo.fetch``, from :class:`~orchestrator.engine.ports.Delivery`) with ``argsrepr``/``kwargsrepr``
naming only its run, step, item and attempt (never params, outputs or secrets: the message holds
none, and the reprs hold less). Each message is stamped with when it is ``due`` (publish time plus
countdown), which the worker turns into the dispatch-lag metric.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import Any

from celery import Celery
from celery.events import Event
from celery.utils.time import utcoffset
from kombu.exceptions import BatchPublishError, OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from orchestrator.broker import protocol
from orchestrator.engine.ports import Delivery, Outbound
from orchestrator.engine.unit import STEP_TASK
from orchestrator.errors import ServiceUnavailable
from orchestrator.store.connections import unreachable
from orchestrator.store.dead_letters import DeadLetter


class CeleryDispatcher:
    """The :class:`~orchestrator.engine.ports.Dispatcher` over a Celery app: any broker, a fast path on Redis.

    Args:
        app: The Celery app whose broker the messages go to.
        batch_size: Messages per pipeline on Redis.
        shares_store: The broker is the run store's own Redis (same server, same database): the
            store may push step messages itself, inside the script that fires them
            (:meth:`outbound`). See :func:`shares_store`.
    """

    def __init__(self, app: Celery, batch_size: int = 1000, *, shares_store: bool = False) -> None:
        self.app = app
        self.batch_size = batch_size
        self.shares_store = shares_store

    def send(self, deliveries: Sequence[Delivery]) -> list[str]:
        """Publish all deliveries; returns their task ids in order.

        Raises:
            ServiceUnavailable: the broker cannot be reached.
        """
        if not deliveries:
            return []
        with _reachable(), self.app.producer_or_acquire() as producer:
            channel = producer.channel
            if hasattr(channel, "create_publish_batch"):  # kombu's Redis transport
                with producer.connection._reraise_as_library_errors():
                    return self._push(producer, channel, deliveries)
            return self._send_tasks(producer, deliveries)

    def outbound(self, deliveries: Sequence[Delivery]) -> list[Outbound] | None:
        """The messages of these deliveries for the run store to push itself, or None when it cannot.

        Only when the broker is the store's Redis: the store's completion script then pushes
        the messages of the dependents it fires in the same atomic call (no outbox entry, no
        publish round trip). What it pushed is reported with :meth:`pushed`.
        """
        if not self.shares_store:
            return None
        now = time.time()
        origin = self._origin()
        return [protocol.build(d, origin, now) for d in deliveries]

    def pushed(self, messages: Sequence[Outbound]) -> None:
        """Messages the store pushed: their ``task-sent`` events, when those are on."""
        if messages and self._sends_sent_events:
            with _reachable(), self.app.producer_or_acquire() as producer:
                self._sent_events(producer, messages)

    def _origin(self) -> protocol.Origin:
        # As in send_task: a step sent from a running task is its child (Flower draws the tree).
        parent = self.app.current_worker_task
        return protocol.Origin.here(
            self.app.thread_oid,
            parent_id=parent.request.id if parent else None,
            root_id=(parent.request.root_id or parent.request.id) if parent else None,
            priority=self._priority,
        )

    # The app's settings, read once (a lookup in Celery's layered configuration costs about 5 µs,
    # and the step path would make two a step); they do not change once the app is in use.

    @cached_property
    def _priority(self) -> int:
        return int(self.app.conf.task_default_priority or 0)

    @cached_property
    def _sends_sent_events(self) -> bool:
        return bool(self.app.conf.task_send_sent_event)

    def _send_tasks(self, producer: Any, deliveries: Sequence[Delivery]) -> list[str]:
        """``send_task`` per message inside one kombu batch (any broker)."""
        ids: list[str] = []
        now = time.time()
        with producer.batch(max_size=self.batch_size):
            for d in deliveries:
                result = self.app.send_task(
                    STEP_TASK,
                    kwargs=protocol.kwargs_of(d, now),
                    queue=d.queue,
                    producer=producer,
                    argsrepr="()",
                    kwargsrepr=protocol.kwargsrepr(d),
                    countdown=d.countdown,
                    soft_time_limit=d.soft_time_limit,
                    time_limit=d.time_limit,
                    shadow=d.shadow,
                    ignore_result=True,
                )
                ids.append(result.id)
        return ids

    def _push(self, producer: Any, channel: Any, deliveries: Sequence[Delivery]) -> list[str]:
        """Build each message (:mod:`~orchestrator.broker.protocol`) and ``LPUSH`` them, a pipeline per batch."""
        for queue in {d.queue for d in deliveries}:  # kombu remembers what this channel declared
            producer.maybe_declare(self.app.amqp.queues[queue])
        now = time.time()
        origin = self._origin()
        messages = [protocol.build(d, origin, now) for d in deliveries]
        with channel.conn_or_acquire() as client:  # kombu's client: it adds the global key prefix
            for start in range(0, len(messages), self.batch_size):
                pipe = client.pipeline(transaction=False)
                for m in messages[start : start + self.batch_size]:
                    pipe.lpush(channel._q_for_pri(m.queue, m.priority), m.payload)
                pipe.execute()
        self._sent_events(producer, messages)
        return [m.task_id for m in messages]

    def _sent_events(self, producer: Any, messages: Sequence[Outbound]) -> None:
        """The ``task-sent`` events of one call as one ``task.multi`` event message, when they are on."""
        if not messages or not self._sends_sent_events:
            return
        dispatcher = self.app.amqp._event_dispatcher
        offset = utcoffset()
        events = [
            Event(
                "task-sent",
                hostname=dispatcher.hostname,
                utcoffset=offset,
                pid=dispatcher.pid,
                clock=dispatcher.clock.forward(),
                **protocol.sent_fields(m),
            )
            for m in messages
        ]
        producer.publish(
            events,
            exchange=dispatcher.exchange,
            routing_key="task.multi",
            serializer=dispatcher.serializer,
            headers=dict(dispatcher.headers),
            delivery_mode=dispatcher.delivery_mode,
            declare=[dispatcher.exchange],
        )

    def revoke(self, task_ids: Sequence[str]) -> None:
        if task_ids:
            with _reachable():
                self.app.control.revoke(list(task_ids))

    def call(self, task: str, queue: str, kwargs: dict[str, Any]) -> str:
        with _reachable():
            return str(self.app.send_task(task, kwargs=kwargs, queue=queue, ignore_result=True).id)

    def replay(self, letter: DeadLetter) -> None:
        """Publish a dead letter back to its queue exactly as it was received."""
        with _reachable(), self.app.producer_or_acquire() as producer:
            producer.publish(
                letter.raw_body(),
                exchange="",
                routing_key=letter.queue,
                headers=letter.headers,
                content_type=letter.content_type or "application/json",
                content_encoding=letter.content_encoding or "utf-8",
                retry=True,
            )


@contextmanager
def _reachable() -> Iterator[None]:
    """Connection errors of the broker as :class:`~orchestrator.errors.ServiceUnavailable`.

    kombu's publish batch on Redis wraps the error of a failed pipeline in ``BatchPublishError``
    ("delivery is uncertain"): some messages may have gone out. It is the same outage: the caller
    learns the broker was unreachable, and the outbox publishes again what may not have gone out
    (claims drop the duplicates). Left as it was, a fan-out cut off by a broker outage failed its step.
    """
    try:
        yield
    except (OperationalError, BatchPublishError, RedisConnectionError, RedisTimeoutError, ConnectionError) as exc:
        raise ServiceUnavailable(unreachable("the broker", exc)) from exc
