"""The bytes of a step message on a Redis queue: Celery's task protocol 2 in kombu's Redis envelope.

The one place the format is written. Two paths push these bytes: the dispatcher's publish
pipeline (:mod:`orchestrator.broker.dispatch`) and, when the broker is the run store's own
Redis, ``complete.lua`` itself, which pushes the messages of the dependents a completion fires
in the same atomic call that records it (:class:`~orchestrator.engine.ports.Outbound`). A stock
``celery worker`` and Flower read what is built here as they read what ``send_task`` publishes (``tests/broker``): the
envelope is the one kombu's ``Channel.prepare_message`` and ``basic_publish`` produce, the
headers those of Celery's ``amqp.as_task_v2``.

Building them by hand, not through ``as_task_v2``, ``Producer._prepare`` and the channel, costs
a few microseconds a message instead of tens: the step messages carry no user data (run, step,
item, attempt, plan and epoch only), so there is nothing to route, declare or ``saferepr``. And
most of a message is the same for every message of one queue and step: :func:`template` renders
that part to JSON once, with a ``%(slot)s`` where each message's own values go (its id, body,
``eta``, parent and root, arguments' repr, reply-to and delivery tag), so that :func:`build` encodes only
those (a 10,000-root submit builds 10,000 messages).

The layout, for reference (Celery's "Message Protocol" page):

- envelope: ``{"body": base64(body), "content-encoding": "utf-8", "content-type":
  "application/json", "headers": {...}, "properties": {...}}``
- body: ``[args, kwargs, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]``
- headers: ``lang task id shadow eta expires group group_index retries timelimit root_id
  parent_id argsrepr kwargsrepr origin ignore_result replaced_task_nesting stamped_headers stamps``
- properties: ``correlation_id reply_to delivery_mode delivery_info{exchange, routing_key}
  priority body_encoding delivery_tag``
"""

from __future__ import annotations

import base64
import json
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from json.encoder import encode_basestring_ascii as _string  # what json.dumps does with a str
from typing import Any

from orchestrator.engine.ports import Delivery, Outbound
from orchestrator.engine.unit import STEP_TASK

CONTENT_TYPE = "application/json"
CONTENT_ENCODING = "utf-8"
EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
"""The third element of a protocol 2 body: a step message is never part of a Celery canvas."""
_EMBED_JSON = json.dumps(EMBED)


@dataclass(frozen=True)
class Origin:
    """Who publishes: the headers every message of one process shares.

    Args:
        origin: ``pid@host``, as Celery's ``origin`` header.
        reply_to: The publishing app's ``thread_oid`` (Celery sets it; nothing replies to a step).
        parent_id: The running task that publishes, if any (Flower draws the tree from it).
        root_id: That task's root.
        priority: The messages' priority (kombu's Redis transport: a list per priority step).
    """

    origin: str
    reply_to: str
    parent_id: str | None = None
    root_id: str | None = None
    priority: int = 0

    @classmethod
    def here(cls, reply_to: str, **fields: Any) -> Origin:
        return cls(origin=_origin_of(os.getpid()), reply_to=reply_to, **fields)


@lru_cache(maxsize=1)
def _origin_of(pid: int) -> str:
    """``pid@host`` (asked once per process: a forked pool process has its own pid)."""
    return f"{pid}@{socket.gethostname()}"


def kwargs_of(delivery: Delivery, now: float) -> dict[str, Any]:
    """The step task's keyword arguments, stamped with when the message is ``due`` (now plus countdown)."""
    kwargs = delivery.message.kwargs()
    kwargs["due"] = round(now + (delivery.countdown or 0.0), 3)
    return kwargs


def kwargsrepr(delivery: Delivery) -> str:
    """What Flower and the task events show of a step's arguments: its run, step, item and attempt."""
    m = delivery.message
    shown: dict[str, Any] = {"run_id": m.run_id, "step": m.step}
    if m.item is not None:
        shown["item"] = m.item
    shown["attempt"] = m.attempt
    return repr(shown)


SLOTS = ("body", "id", "eta", "root_id", "parent_id", "kwargsrepr", "reply_to", "delivery_tag")
"""What differs between two messages of one :func:`template`: each a JSON value in the message."""


@lru_cache(maxsize=1024, typed=True)
def template(
    origin: str, priority: int, queue: str, shadow: str | None, time_limit: float | None, soft_time_limit: float | None
) -> str:
    """The JSON of a message with these fixed fields, a ``%(slot)s`` in place of each of :data:`SLOTS`.

    Args:
        origin: The publisher's ``pid@host``.
        priority: The message's priority.
        queue: Its queue (the routing key).
        shadow: The name Flower shows.
        time_limit: Celery's ``timelimit`` header, with ``soft_time_limit`` (typed: a limit of
            ``20`` is written ``20``, one of ``20.0`` ``20.0``, as ``as_task_v2`` writes them).
        soft_time_limit: See ``time_limit``.

    The publisher's ``reply_to`` (its app's ``thread_oid``) is a slot, not a key: it differs per
    thread, and a threads pool would otherwise hold a template per thread, queue and step.
    """
    token = {name: f"\x00{name}\x00" for name in SLOTS}
    envelope = {
        "body": token["body"],
        "content-encoding": CONTENT_ENCODING,
        "content-type": CONTENT_TYPE,
        "headers": {
            "lang": "py",
            "task": STEP_TASK,
            "id": token["id"],
            "shadow": shadow,
            "eta": token["eta"],
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [time_limit, soft_time_limit],
            "root_id": token["root_id"],
            "parent_id": token["parent_id"],
            "argsrepr": "()",
            "kwargsrepr": token["kwargsrepr"],
            "origin": origin,
            "ignore_result": True,
            "replaced_task_nesting": 0,
            "stamped_headers": None,
            "stamps": {},
        },
        "properties": {
            "correlation_id": token["id"],
            "reply_to": token["reply_to"],
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": priority,
            "body_encoding": "base64",
            "delivery_tag": token["delivery_tag"],
        },
    }
    text = json.dumps(envelope).replace("%", "%%")
    for name, value in token.items():  # no queue, task or origin a definition allows holds a NUL
        text = text.replace(json.dumps(value), f"%({name})s")
    return text


def build(delivery: Delivery, origin: Origin, now: float, task_id: str | None = None) -> Outbound:
    """The message of one delivery, as kombu's Redis transport stores it on its queue's list."""
    task_id = task_id or str(uuid.uuid4())
    body = f"[[], {json.dumps(kwargs_of(delivery, now))}, {_EMBED_JSON}]".encode()
    eta = None
    if delivery.countdown:
        eta = datetime.fromtimestamp(now + delivery.countdown, tz=UTC).isoformat()
    text = template(
        origin.origin, origin.priority, delivery.queue, delivery.shadow, delivery.time_limit, delivery.soft_time_limit
    )
    payload = text % {
        "body": f'"{base64.b64encode(body).decode("ascii")}"',
        "id": _string(task_id),
        "eta": _json(eta),
        "root_id": _string(origin.root_id or task_id),
        "parent_id": _json(origin.parent_id),
        "kwargsrepr": _string(kwargsrepr(delivery)),
        "reply_to": _string(origin.reply_to),
        "delivery_tag": f'"{uuid.uuid4()}"',
    }
    return Outbound(task_id, delivery.queue, origin.priority, payload)


def _json(value: str | None) -> str:
    return "null" if value is None else _string(value)


def sent_fields(message: Outbound) -> dict[str, Any]:
    """The fields of a message's ``task-sent`` event, as ``as_task_v2`` makes them (plus its routing).

    Read back from the message's own headers: only a publisher whose ``task-sent`` events are on asks.
    """
    h = json.loads(message.payload)["headers"]
    return {
        "uuid": message.task_id,
        "root_id": h["root_id"],
        "parent_id": h["parent_id"],
        "name": h["task"],
        "args": h["argsrepr"],
        "kwargs": h["kwargsrepr"],
        "retries": h["retries"],
        "eta": h["eta"],
        "expires": h["expires"],
        "queue": message.queue,
        "exchange": "",
        "routing_key": message.queue,
    }
