"""Scenario 8: poison messages go to the dead-letter queue; the worker keeps serving; replay works."""

from __future__ import annotations

import json
import pickle
import time
import uuid

import pytest
from typer.testing import CliRunner

from config import get_settings
from orchestrator.cli import app as cli
from orchestrator.engine.records import RunStatus
from orchestrator.store.dead_letters import DeadLetters
from tests.integration.conftest import Orchestra

pytestmark = pytest.mark.integration


def _publish_raw(orchestra: Orchestra, body: bytes, content_type: str, task: str) -> None:
    headers = {
        "lang": "py",
        "task": task,
        "id": str(uuid.uuid4()),
        "root_id": None,
        "parent_id": None,
        "group": None,
        "retries": 0,
        "eta": None,
        "expires": None,
        "timelimit": [None, None],
    }
    with orchestra.app.producer_or_acquire() as producer:
        producer.publish(
            body,
            exchange="",
            routing_key="default",
            headers=headers,
            content_type=content_type,
            content_encoding="utf-8",
        )


def test_poison_messages_are_dead_lettered_and_replayable(
    orchestra: Orchestra, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = orchestra.worker(name="first", concurrency=1)
    good_body = json.dumps([[], {"name": "late"}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
    _publish_raw(orchestra, b"{not json", "application/json", "t.effect")
    _publish_raw(orchestra, pickle.dumps({"x": 1}), "application/x-python-serialize", "t.effect")
    _publish_raw(orchestra, good_body.encode(), "application/json", "t.late")  # unknown to this worker

    letters = DeadLetters(orchestra.redis, orchestra.store.keys)
    deadline = time.monotonic() + 20
    while len(letters.list()) < 3:
        assert time.monotonic() < deadline, first.log.read_text()[-3000:]
        time.sleep(0.05)
    by_body = {letter.raw_body()[:9]: letter for letter in letters.list()}
    assert by_body[b"{not json"].reason == "undecodable"  # JSON that does not decode
    pickled = next(letter for letter in letters.list() if letter.content_type == "application/x-python-serialize")
    assert pickled.reason == "invalid_task" and "ContentDisallowed" in pickled.error  # pickle is never accepted
    unknown = next(letter for letter in letters.list() if letter.reason == "unknown_task")
    assert unknown.task == "t.late"

    # The worker kept serving.
    run_id = orchestra.submit({"workflow": "after", "steps": {"a": {"task": "t.effect", "args": {"name": "a"}}}})
    assert orchestra.wait(run_id).status is RunStatus.SUCCEEDED

    # Deploy the missing task, then replay through the CLI.
    first.stop()
    orchestra.extra_env["ORCH_TASK_MODULES"] = "tests.integration.tasks,tests.reliability.late_tasks"
    orchestra.worker(name="second", concurrency=1)
    monkeypatch.setenv("ORCH_BROKER_URL", orchestra.redis_url)
    monkeypatch.setenv("ORCH_KEY_PREFIX", orchestra.prefix)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        listed = runner.invoke(cli, ["dead-letters", "list", "--json"])
        assert listed.exit_code == 0
        unknown = next(item for item in json.loads(listed.stdout) if item["reason"] == "unknown_task")
        replayed = runner.invoke(cli, ["dead-letters", "replay", unknown["id"]])
        assert replayed.exit_code == 0, replayed.stderr
        missing = runner.invoke(cli, ["dead-letters", "replay", "nope"])
        assert missing.exit_code == 1 and "no dead letter 'nope'" in missing.stderr
    finally:
        get_settings.cache_clear()
    deadline = time.monotonic() + 20
    while orchestra.effects().get("late") != 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert len(letters.list()) == 2  # the replayed one is gone; the broken ones stay for inspection
