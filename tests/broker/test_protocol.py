"""The step message format (:mod:`orchestrator.broker.protocol`) against Celery's own and a stock worker.

The store pushes step messages itself when the broker is its Redis (``complete.lua``), so the
bytes it pushes must be exactly what ``send_task`` publishes: the first test compares them with
Celery's ``as_task_v2`` and kombu's channel field by field; the second has a stock ``celery
worker`` (an app that is none of ours) run what ``complete.lua`` pushed, on a priority queue too,
and a stock Flower list it under its ``shadow`` name with its ``argsrepr``/``kwargsrepr``.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from celery import Celery
from kombu.transport.redis import Channel
from pydantic import ValidationError
from redis import Redis

from orchestrator.broker import protocol
from orchestrator.broker.dispatch import CeleryDispatcher
from orchestrator.definition.loader import build_workflow
from orchestrator.engine.context import StepReads
from orchestrator.engine.ports import Delivery, NewRun
from orchestrator.engine.records import Outcome, Trigger
from orchestrator.engine.unit import STEP_TASK, StepMessage, Unit
from orchestrator.plan.compiler import compile_workflow
from orchestrator.store import RedisRunStore
from orchestrator.store.keys import Keys
from tests.integration.conftest import ROOT, free_port
from tests.observability.conftest import wait_for

FLOWER_AUTH = ("ops", "stock-flower-password")
ORIGIN = protocol.Origin(origin="1@host", reply_to="reply-oid", parent_id="parent", root_id="root")
ORIGINS = {
    "from a task": ORIGIN,
    "from the coordinator": protocol.Origin(origin="2@host", reply_to="other-oid", priority=6),
}
"""A message sent by a running step (its child in Flower) and one of a run's roots (its own root)."""
DELIVERIES = {
    "a plain step": (StepMessage.of(Unit("run1", "fetch"), "plan1"), "q1", None, None, None, "demo.fetch"),
    "an item's retry, due later": (
        StepMessage.of(Unit("run1", "fetch", 3), "plan1", attempt=2, epoch=1),
        "q1",
        12.5,
        10.0,
        12.0,
        "demo.fetch",
    ),
    "text JSON and %-formatting would touch": (
        StepMessage.of(Unit('run-"2"', "étape %(body)s"), "plan1"),
        "q %s \\ \u00e9",
        None,
        1.5,
        None,
        'demo."quoted"%%',
    ),
}
"""Deliveries whose fixed fields (queue, limits, shadow) and own values differ: each is one template."""


def _celery_envelope(delivery: Delivery, task_id: str, now: float, origin: protocol.Origin = ORIGIN) -> dict[str, Any]:
    """What ``send_task`` would put on the queue: ``as_task_v2``, then kombu's channel."""
    headers, properties, body, _ = _as_task_v2(delivery, task_id, now, origin)
    return {
        "body": base64.b64encode(json.dumps(body).encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": headers,
        "properties": dict(
            properties,
            delivery_mode=2,
            delivery_info={"exchange": "", "routing_key": delivery.queue},
            priority=origin.priority,
            body_encoding="base64",
        ),
    }


def _as_task_v2(delivery: Delivery, task_id: str, now: float, origin: protocol.Origin) -> Any:
    """Celery's own headers, properties, body and ``task-sent`` fields of the message."""
    app = Celery("reference", broker="memory://", set_as_current=False)
    return app.amqp.as_task_v2(
        task_id,
        STEP_TASK,
        kwargs=protocol.kwargs_of(delivery, now),
        countdown=delivery.countdown,
        now=None,
        soft_time_limit=delivery.soft_time_limit,
        time_limit=delivery.time_limit,
        shadow=delivery.shadow,
        ignore_result=True,
        reply_to=origin.reply_to,
        root_id=origin.root_id or task_id,
        parent_id=origin.parent_id,
        origin=origin.origin,
        argsrepr="()",
        kwargsrepr=protocol.kwargsrepr(delivery),
        create_sent_event=True,
    )


@pytest.mark.parametrize("origin", ORIGINS.values(), ids=ORIGINS.keys())
@pytest.mark.parametrize("fields", DELIVERIES.values(), ids=DELIVERIES.keys())
def test_a_built_message_is_the_one_send_task_publishes(fields: tuple[Any, ...], origin: protocol.Origin) -> None:
    delivery = Delivery(*fields)
    now = time.time()
    for task_id in ("t-1", "t-2"):  # the second is built from the first's template (protocol.template)
        ours = json.loads(protocol.build(delivery, origin, now, task_id=task_id).payload)
        theirs = _celery_envelope(delivery, task_id, now, origin)
        assert json.loads(base64.b64decode(ours.pop("body"))) == json.loads(base64.b64decode(theirs.pop("body")))
        assert ours["properties"].pop("delivery_tag")  # kombu's: a fresh uuid per message
        eta_ours, eta_theirs = ours["headers"].pop("eta"), theirs["headers"].pop("eta")
        assert (eta_ours is None) == (eta_theirs is None)
        if eta_ours:
            assert abs(_epoch(eta_ours) - _epoch(eta_theirs)) < 0.1
        assert ours == theirs


@pytest.mark.parametrize("epoch", [0, 3])
def test_messages_validated_at_once_are_the_ones_built_one_by_one(epoch: int) -> None:
    """``StepMessage.of_steps`` (a run's roots, a completion's dependents) makes the messages ``of``
    makes, with the same keyword arguments on the wire, and refuses what ``of`` refuses."""
    steps = ["a", "b", "c"]
    batch = StepMessage.of_steps("r1", "p1", steps, epoch)
    single = [StepMessage.of(Unit("r1", s), "p1", epoch=epoch) for s in steps]
    assert batch == single
    assert [m.kwargs() for m in batch] == [m.kwargs() for m in single]
    with pytest.raises(ValidationError):
        StepMessage.of_steps("r1", "p1", ["a", ""], epoch)
    with pytest.raises(ValidationError):
        StepMessage.of_steps("r1", "p1", ["a"], True)  # strict, as the model is: not an int


def test_messages_built_from_one_template_differ_in_all_their_own_values() -> None:
    """Two deliveries of one queue, step and limits (one :func:`protocol.template`) from publishers
    with other parents, thread ids and priorities: each message is still the one ``send_task`` makes."""
    first = Delivery(StepMessage.of(Unit("run1", "fetch", 3), "plan1", attempt=2), "q1", 12.5, 10.0, 12.0, "demo.x")
    second = Delivery(StepMessage.of(Unit("run-2", "fetch"), "plan2", epoch=4), "q1", None, 10.0, 12.0, "demo.x")
    other = protocol.Origin(origin="1@host", reply_to="thread-2", parent_id="p-2", root_id="r-2")
    now = time.time()
    hits = protocol.template.cache_info().hits
    for delivery, origin, task_id in ((first, ORIGIN, "t-1"), (second, other, "t-2"), (first, other, "t-3")):
        ours = json.loads(protocol.build(delivery, origin, now, task_id=task_id).payload)
        theirs = _celery_envelope(delivery, task_id, now, origin)
        assert json.loads(base64.b64decode(ours.pop("body"))) == json.loads(base64.b64decode(theirs.pop("body")))
        assert ours["properties"].pop("delivery_tag")
        assert (ours["headers"].pop("eta") is None) == (theirs["headers"].pop("eta") is None)
        assert ours == theirs
    assert protocol.template.cache_info().hits >= hits + 2  # the second and third from the first's template


@pytest.mark.parametrize("fields", DELIVERIES.values(), ids=DELIVERIES.keys())
def test_the_task_sent_event_of_a_built_message_is_the_one_send_task_emits(fields: tuple[Any, ...]) -> None:
    delivery = Delivery(*fields)
    now = time.time()
    message = protocol.build(delivery, ORIGIN, now, task_id="t-1")
    *_, theirs = _as_task_v2(delivery, "t-1", now, ORIGIN)
    ours = protocol.sent_fields(message)
    assert ours.pop("queue") == ours.pop("routing_key") == delivery.queue
    assert ours.pop("exchange") == ""
    eta_ours, eta_theirs = ours.pop("eta"), theirs.pop("eta")
    assert (eta_ours is None) == (eta_theirs is None)
    assert ours == theirs


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def test_keys_put_a_priority_where_kombu_does() -> None:
    keys = Keys("p")
    channel = Channel.__new__(Channel)  # only its priority arithmetic: no connection
    channel.priority_steps = [0, 3, 6, 9]
    channel.sep = "\x06\x16"
    for priority in range(10):
        assert keys.queue_list("q", priority) == keys.broker_prefix() + channel._q_for_pri("q", priority)


@pytest.fixture
def stock(redis_url: str, key_prefix: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A stock celery worker (events on) and a stock Flower on the test's namespace; stopped by pid."""
    env = dict(
        os.environ,
        STOCK_BROKER=redis_url,
        STOCK_PREFIX=Keys(key_prefix).broker_prefix(),
        STOCK_REDIS=redis_url,
        STOCK_SEEN=f"{key_prefix}:seen",
    )
    port = free_port()
    celery = [sys.executable, "-m", "celery", "-A", "tests.broker.stock"]
    commands = {
        "worker": [*celery, "worker", "-E", "--pool", "solo", "-Q", "q1", "--loglevel", "INFO"],
        "flower": [
            *celery,
            "flower",
            f"--port={port}",
            "--address=127.0.0.1",
            f"--basic-auth={FLOWER_AUTH[0]}:{FLOWER_AUTH[1]}",
        ],
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}
    logs = {name: tmp_path / f"{name}.log" for name in commands}
    try:
        for name, command in commands.items():
            with logs[name].open("wb") as sink:
                processes[name] = subprocess.Popen(command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
        wait_for("the stock worker", lambda: " ready." in logs["worker"].read_text())
        wait_for("flower", lambda: _answers(f"http://127.0.0.1:{port}/healthcheck"))
        yield {"seen": env["STOCK_SEEN"], "flower": f"http://127.0.0.1:{port}"}
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_stock_worker_and_flower_read_what_the_completion_script_pushes(
    stock: dict[str, str], redis_client: Redis, redis_url: str, key_prefix: str
) -> None:
    keys = Keys(key_prefix)
    store = RedisRunStore(redis_client, keys)
    workflow = {
        "workflow": "w",
        "defaults": {"queue": "q1", "timeout": "30s"},
        "steps": {"root": {"task": "demo.root"}, "a": {"task": "demo.a", "needs": ["root"]}},
    }
    workflow["steps"]["b"] = {"task": "demo.b", "needs": ["root"]}
    plan = compile_workflow(build_workflow(workflow))
    store.runs.create(NewRun("r1", plan, {}, Trigger.CLI, 60))
    store.steps.mark_queued("r1", ["root"], 60)
    message = StepMessage.of(Unit("r1", "root"), plan.plan_id)
    assert store.steps.claim_and_read(message, "t0", "w", 60, StepReads())[0].ok
    outbound: dict[str, Any] = {}
    for name, priority in (("a", 0), ("b", 6)):  # b on kombu's priority-6 list
        app = Celery("x", broker=redis_url, set_as_current=False)
        app.conf.task_default_priority = priority
        dispatcher = CeleryDispatcher(app, shares_store=True)
        delivery = Delivery.of(plan, StepMessage.of(Unit("r1", name), plan.plan_id))
        built = dispatcher.outbound([delivery])
        assert built is not None
        outbound[name] = built[0]
    completion = store.steps.complete(
        plan, Unit("r1", "root"), "t0", Outcome.succeeded(1), lease_seconds=60, outbound=outbound, epoch=0
    )
    assert sorted(completion.pushed) == ["a", "b"]
    assert redis_client.zcard(keys.outbox()) == 2  # guarded until claimed, as a published message is

    def seen() -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in redis_client.lrange(stock["seen"], 0, -1)]

    wait_for("the stock worker to run both", lambda: len(seen()) == 2)
    by_step = {s["kwargs"]["step"]: s for s in seen()}
    assert by_step["a"]["kwargs"] == {
        "run_id": "r1",
        "plan_id": plan.plan_id,
        "step": "a",
        "due": pytest.approx(time.time(), abs=30),
    }
    soft, hard = plan.steps["a"].policy.time_limits()
    assert by_step["a"]["timelimit"] == [hard, soft]
    assert {s["id"] for s in seen()} == {outbound["a"].task_id, outbound["b"].task_id}
    assert by_step["b"]["priority"] == 6

    def flower_tasks() -> dict[str, Any]:
        found: dict[str, Any] = httpx.get(f"{stock['flower']}/api/tasks", auth=FLOWER_AUTH, timeout=5).json()
        return found

    assert redis_client.zcard(keys.outbox()) == 2  # a stock worker claims nothing: the guards stay

    wait_for("flower to list both", lambda: len(flower_tasks()) == 2)
    listed = {t["name"]: t for t in flower_tasks().values()}
    assert set(listed) == {"demo.a", "demo.b"}  # the shadow names, not orchestrator.step
    assert listed["demo.a"]["args"] == "()"
    assert listed["demo.a"]["kwargs"] == "{'run_id': 'r1', 'step': 'a', 'attempt': 1}"
    assert listed["demo.a"]["state"] == "SUCCESS"
