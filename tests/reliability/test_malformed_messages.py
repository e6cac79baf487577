"""Messages that are not steps of any run: each is dead-lettered with a reason, nothing runs, the worker serves on.

Items pushed onto a queue by hand (not JSON, no envelope, a body that does not decode), step
messages that decode but contradict the run store (an unknown step or plan, a positional or an
extra argument, an item of a step that is not ``for_each``, an index out of range, another run's
plan), a stale message from before a retry, and a queue key of the wrong Redis type.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from orchestrator.engine.records import RunStatus
from orchestrator.engine.unit import STEP_TASK
from orchestrator.store.dead_letters import DeadLetter
from tests.integration.conftest import Orchestra

pytestmark = pytest.mark.integration

ONE_STEP = {"workflow": "one", "steps": {"a": {"task": "t.effect", "args": {"name": "a"}}}}
FAN_OUT = {
    "workflow": "fan",
    "params": {"items": {"type": "array", "default": [1, 2, 3]}},
    "steps": {"each": {"task": "t.square", "for_each": "${params.items}", "args": {"x": "${item}"}}},
}


def _letters(orchestra: Orchestra) -> list[DeadLetter]:
    return orchestra.store.dead_letters.list(1000)


def _wait_letters(orchestra: Orchestra, count: int, timeout: float = 20.0) -> list[DeadLetter]:
    deadline = time.monotonic() + timeout
    while len(letters := _letters(orchestra)) < count:
        assert time.monotonic() < deadline, (letters, "\n".join(w.log.read_text()[-3000:] for w in orchestra.workers))
        time.sleep(0.05)
    return letters


def _push(orchestra: Orchestra, item: bytes | str, queue: str = "default") -> None:
    orchestra.redis.lpush(orchestra.store.keys.queue(queue), item)


def _envelope(body: bytes, **changes: Any) -> str:
    """A kombu envelope as the Redis transport stores it, with ``changes`` applied."""
    envelope: dict[str, Any] = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"lang": "py", "task": "t.effect", "id": str(uuid.uuid4()), "retries": 0, "timelimit": [None, None]},
        "properties": {
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": "default"},
            "priority": 0,
        },
    }
    for key, value in changes.items():
        if value is None:
            envelope.pop(key, None)
        else:
            envelope[key] = value
    return json.dumps(envelope)


def _serves(orchestra: Orchestra) -> None:
    run_id = orchestra.submit(ONE_STEP)
    assert orchestra.wait(run_id, timeout=30).status is RunStatus.SUCCEEDED


def test_items_that_are_not_messages_are_dead_lettered_and_the_worker_goes_on(orchestra: Orchestra) -> None:
    worker = orchestra.worker(name="w", concurrency=1)
    good = json.dumps([[], {"name": "x"}, {}]).encode()
    cases: dict[str, bytes | str] = {
        "not json": b"{not json at all",
        "a json list": "[1, 2, 3]",
        "no properties": _envelope(good, properties=None),
        "body not base64": _envelope(good).replace(base64.b64encode(good).decode(), "%%%not-base64%%%"),
        "not utf-8": b"\xff\xfe\x00garbage",
    }
    for item in cases.values():
        _push(orchestra, item)
    letters = _wait_letters(orchestra, len(cases))
    assert {letter.reason for letter in letters} == {"undecodable"}
    assert {letter.raw_body() for letter in letters} == {
        item if isinstance(item, bytes) else item.encode() for item in cases.values()
    }
    assert all(letter.queue == "default" and letter.error for letter in letters)
    _serves(orchestra)
    assert worker.process.poll() is None
    assert "Unrecoverable error" not in worker.log.read_text()


def _send_step(orchestra: Orchestra, *args: Any, **kwargs: Any) -> str:
    return str(orchestra.app.send_task(STEP_TASK, args=args, kwargs=kwargs, queue="default", ignore_result=True).id)


def test_step_messages_that_contradict_the_store_run_nothing(orchestra: Orchestra) -> None:
    orchestra.worker(name="w", concurrency=1)
    run_id = orchestra.submit(ONE_STEP)
    assert orchestra.wait(run_id).status is RunStatus.SUCCEEDED
    plan_id = orchestra.store.runs.plan_of(run_id)[0].plan_id
    other = orchestra.submit({"workflow": "other", "steps": {"a": {"task": "t.effect", "args": {"name": "a"}}}})
    orchestra.wait(other)
    other_plan = orchestra.store.runs.plan_of(other)[0].plan_id
    effects_before = orchestra.effects()

    sends: list[Callable[[], str]] = [
        lambda: _send_step(orchestra, run_id=run_id, plan_id=plan_id, step="nope"),  # unknown step
        lambda: _send_step(orchestra, run_id=run_id, plan_id="0" * 24, step="a"),  # unknown plan
        lambda: _send_step(orchestra, run_id=run_id, plan_id=plan_id, step="a", extra=1),  # extra kwarg
        lambda: _send_step(orchestra, run_id, plan_id, "a"),  # positional arguments
        lambda: _send_step(orchestra, run_id=run_id, plan_id=plan_id, step="a", item=0),  # not a for_each step
        lambda: _send_step(orchestra, run_id=run_id, plan_id=plan_id, step="a", item=-1),  # negative item
        lambda: _send_step(orchestra, run_id=run_id, plan_id=plan_id, step="a", attempt=True),  # not an integer
        lambda: _send_step(orchestra, run_id=run_id, plan_id=plan_id, step="a", attempt=7),  # beyond max_attempts
        lambda: _send_step(orchestra, run_id=run_id, plan_id=other_plan, step="a"),  # another run's plan
    ]
    ids = [send() for send in sends]
    letters = _wait_letters(orchestra, len(sends))
    assert {letter.task_id for letter in letters} == set(ids)
    assert {letter.reason for letter in letters} == {"invalid_message"}
    assert all(letter.task == STEP_TASK for letter in letters)
    assert orchestra.effects() == effects_before  # nothing ran again
    assert orchestra.coordinator.get(run_id).steps["a"].attempts == 1
    _serves(orchestra)


def test_item_messages_beyond_the_fan_out_run_nothing(orchestra: Orchestra) -> None:
    orchestra.worker(name="w", concurrency=1)
    run_id = orchestra.submit(FAN_OUT)
    record = orchestra.wait(run_id)
    assert record.steps["each"].output == [1, 4, 9]
    plan_id = orchestra.store.runs.plan_of(run_id)[0].plan_id
    before = orchestra.effects()
    beyond = _send_step(orchestra, run_id=run_id, plan_id=plan_id, step="each", item=3)
    again = _send_step(orchestra, run_id=run_id, plan_id=plan_id, step="each", item=0)  # the step has ended
    letters = _wait_letters(orchestra, 1)
    assert [letter.task_id for letter in letters] == [beyond]  # out of range: dead-lettered
    time.sleep(1.0)
    assert again not in {letter.task_id for letter in _letters(orchestra)}  # finished step: a stale drop
    assert orchestra.effects() == before


def test_retry_of_a_run_while_its_old_item_messages_are_queued_is_safe(orchestra: Orchestra) -> None:
    data = {
        "workflow": "fan-retry",
        "params": {"items": {"type": "array", "default": list(range(12))}},
        "steps": {
            "each": {"task": "t.flaky", "for_each": "${params.items}", "args": {"name": "i${item}", "failures": 0}},
            "boom": {"task": "t.flaky", "args": {"name": "boom", "failures": 1, "error": "ValueError"}},
        },
    }
    run_id = orchestra.submit(data)  # no worker yet: every message waits in the queue
    worker = orchestra.worker(name="w", concurrency=1)
    first = orchestra.wait(run_id, timeout=60)
    assert first.status is RunStatus.FAILED  # boom failed once (ValueError: not retried)
    worker.stop()
    # Publish stale copies of item messages from before the retry, then retry the run.
    plan_id = orchestra.store.runs.plan_of(run_id)[0].plan_id
    for item in range(12):
        _send_step(orchestra, run_id=run_id, plan_id=plan_id, step="each", item=item)
    orchestra.coordinator.retry(run_id, "user:test")
    orchestra.worker(name="w2", concurrency=2)
    second = orchestra.wait(run_id, timeout=60)
    assert second.status is RunStatus.SUCCEEDED
    effects = orchestra.effects()
    assert all(effects[f"i{n}"] == 1 for n in range(12))  # items had succeeded: kept, not run again
    assert effects["boom"] == 1


def test_a_queue_key_of_the_wrong_type_is_moved_aside(orchestra: Orchestra) -> None:
    worker = orchestra.worker(name="w", concurrency=1)
    queue_key = orchestra.store.keys.queue("default")
    orchestra.redis.delete(queue_key)
    orchestra.redis.hset(queue_key, "oops", "a hash where kombu keeps a list")
    time.sleep(2)
    _serves(orchestra)
    assert worker.process.poll() is None
    aside = list(orchestra.redis.scan_iter(match=f"{queue_key}.wrongtype.*"))
    assert len(aside) == 1 and orchestra.redis.hget(aside[0], "oops") == "a hash where kombu keeps a list"
