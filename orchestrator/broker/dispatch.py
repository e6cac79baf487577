"""Publishing step messages: the one place the orchestrator talks to the broker.

The coordinator is given a Celery app (it never imports the worker package) and sends the step
task by name. The messages of one call go out in one round trip, not one each as ``celery.group``
does (celery#1803).

On Redis, each message is built by Celery's own ``amqp.as_task_v2`` and kombu's channel and the
lot is ``LPUSH``ed in one pipeline: the bytes ``send_task`` would publish, without its per-message
overhead (routing, ``saferepr`` of the arguments, declarations, a retry wrapper, and one
``task-sent`` event message each), which made a 10,000-item fan-out slower than a plain
``celery.group``. With ``task_send_sent_event`` on, the call's ``task-sent`` events go out as one
``task.multi`` event message, the form Celery's workers use for buffered task events. The
``before/after_task_publish`` signals are not sent for step messages (nothing here connects
them). A failed pipeline raises like ``send_task`` does; the run store's outbox re-publishes
whatever may not have gone out, and claims drop the duplicates. Other brokers go through
``send_task`` inside one kombu batch.

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
from typing import Any

from celery import Celery
from celery.events import Event
from celery.utils.time import utcoffset
from kombu.exceptions import BatchPublishError, OperationalError
from kombu.utils.uuid import uuid
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from orchestrator.engine.ports import Delivery
from orchestrator.engine.unit import STEP_TASK
from orchestrator.errors import ServiceUnavailable
from orchestrator.store.connections import unreachable
from orchestrator.store.dead_letters import DeadLetter


class CeleryDispatcher:
    """The :class:`~orchestrator.engine.ports.Dispatcher` over a Celery app: any broker, a fast path on Redis."""

    def __init__(self, app: Celery, batch_size: int = 1000) -> None:
        self.app = app
        self.batch_size = batch_size

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
                    return self._send_prepared(producer, channel, deliveries)
            return self._send_tasks(producer, deliveries)

    def _send_tasks(self, producer: Any, deliveries: Sequence[Delivery]) -> list[str]:
        """``send_task`` per message inside one kombu batch (any broker)."""
        ids: list[str] = []
        now = time.time()
        with producer.batch(max_size=self.batch_size):
            for d in deliveries:
                result = self.app.send_task(
                    STEP_TASK,
                    kwargs=_kwargs(d, now),
                    queue=d.queue,
                    producer=producer,
                    argsrepr="()",
                    kwargsrepr=_kwargsrepr(d),
                    **_options(d),
                )
                ids.append(result.id)
        return ids

    def _send_prepared(self, producer: Any, channel: Any, deliveries: Sequence[Delivery]) -> list[str]:
        """Build each message as ``send_task`` does and route it through the channel's publish batch."""
        app, conf = self.app, self.app.conf
        amqp = app.amqp
        # As in send_task: a step sent from a running task is its child (Flower draws the tree).
        parent = app.current_worker_task
        parent_id = parent.request.id if parent else None
        root_id = (parent.request.root_id or parent.request.id) if parent else None
        sent_events = bool(conf.task_send_sent_event)
        priority = conf.task_default_priority or 0
        reply_to = app.thread_oid
        for queue in {d.queue for d in deliveries}:  # kombu remembers what this channel declared
            producer.maybe_declare(amqp.queues[queue])
        ids: list[str] = []
        events: list[dict[str, Any]] = []
        batch = channel.create_publish_batch(self.batch_size)  # flushes by itself every batch_size
        now = time.time()
        try:
            for d in deliveries:
                task_id = uuid()
                headers, properties, body, sent = amqp.as_task_v2(
                    task_id,
                    STEP_TASK,
                    kwargs=_kwargs(d, now),
                    reply_to=reply_to,
                    root_id=root_id,
                    parent_id=parent_id,
                    create_sent_event=sent_events,
                    # str and int values only: repr() prints what saferepr would, far cheaper
                    argsrepr="()",
                    kwargsrepr=_kwargsrepr(d),
                    **_options(d),
                )
                payload, content_type, encoding = producer._prepare(
                    body, conf.task_serializer, None, None, conf.task_compression, headers
                )
                message = channel.prepare_message(
                    payload, priority, content_type, encoding, headers, dict(properties, delivery_mode=2)
                )
                batch.publish(message, exchange="", routing_key=d.queue)  # celery's anon-exchange routing
                ids.append(task_id)
                if sent:
                    events.append(dict(sent, queue=d.queue, exchange="", routing_key=d.queue))
            if events:
                self._sent_events(producer, channel, batch, events)
            batch.flush()
        finally:
            batch.close()
        return ids

    def _sent_events(self, producer: Any, channel: Any, batch: Any, fields: list[dict[str, Any]]) -> None:
        """Add the ``task-sent`` events of one call to the batch as one ``task.multi`` event message."""
        dispatcher = self.app.amqp._event_dispatcher
        offset = utcoffset()
        events = [
            Event(
                "task-sent",
                hostname=dispatcher.hostname,
                utcoffset=offset,
                pid=dispatcher.pid,
                clock=dispatcher.clock.forward(),
                **f,
            )
            for f in fields
        ]
        producer.maybe_declare(dispatcher.exchange)
        payload, content_type, encoding = producer._prepare(
            events, dispatcher.serializer, None, None, None, dict(dispatcher.headers)
        )
        message = channel.prepare_message(
            payload, 0, content_type, encoding, dict(dispatcher.headers), {"delivery_mode": dispatcher.delivery_mode}
        )
        batch.publish(message, exchange=dispatcher.exchange.name, routing_key="task.multi")

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


def _kwargs(delivery: Delivery, now: float) -> dict[str, Any]:
    """The step task's keyword arguments, stamped with when the message is due."""
    kwargs = delivery.message.kwargs()
    kwargs["due"] = round(now + (delivery.countdown or 0.0), 3)
    return kwargs


def _kwargsrepr(delivery: Delivery) -> str:
    """What Flower and the task events show of a step's arguments: its run, step, item and attempt."""
    m = delivery.message
    shown: dict[str, Any] = {"run_id": m.run_id, "step": m.step}
    if m.item is not None:
        shown["item"] = m.item
    shown["attempt"] = m.attempt
    return repr(shown)


def _options(delivery: Delivery) -> dict[str, Any]:
    """The options of a step message, as ``send_task`` and ``as_task_v2`` both take them."""
    return {
        "countdown": delivery.countdown,
        "soft_time_limit": delivery.soft_time_limit,
        "time_limit": delivery.time_limit,
        "shadow": delivery.shadow,
        "ignore_result": True,
    }


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
