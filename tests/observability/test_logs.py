"""Structured logs: a run reconstructed from its JSON lines alone, every line JSON, a console on a terminal."""

from __future__ import annotations

import io
import json
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from config import Settings
from orchestrator.broker.dispatch import CeleryDispatcher
from orchestrator.engine.coordinator import Coordinator
from orchestrator.engine.observers import Change, Observers
from orchestrator.engine.records import EventKind, RunStatus
from orchestrator.observability import logs
from orchestrator.observability.events import LogObserver
from orchestrator.observability.logs import configure_logging, formatter, step_context
from orchestrator.plan.policy import base_policy
from tests.integration.conftest import (
    LEASE,
    Orchestra,
    WorkerProcess,
    orchestra,  # noqa: F401  (re-exported fixture)
)

CONTEXT = ("run_id", "workflow", "step", "attempt", "task_id", "worker")
WORKFLOW = {
    "workflow": "logged",
    "params": {"n": {"type": "integer", "default": 0}},
    "steps": {
        "flaky": {
            "task": "t.flaky",
            "args": {"name": "f", "failures": 1},
            "retry": {"max_attempts": 3, "delay": "100ms", "on": ["ConnectionError"]},
        },
        "chatty": {"task": "t.chatty", "needs": ["flaky"], "args": {"name": "c"}},
        "skipped": {"task": "t.effect", "needs": ["flaky"], "when": "${params.n} > 5", "args": {"name": "s"}},
        "boom": {"task": "t.flaky", "needs": ["chatty"], "args": {"name": "b", "failures": 9, "error": "ValueError"}},
    },
}


class Capture:
    """The submitting side's lines: a logger of its own, with the JSON formatter every process uses."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()
        self.logger = logging.getLogger("orchestrator.events.submitter")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        self.handler = logging.StreamHandler(self.buffer)
        self.handler.setFormatter(formatter("json", "test"))
        self.logger.addHandler(self.handler)

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.buffer.getvalue().splitlines()]

    def close(self) -> None:
        self.logger.removeHandler(self.handler)


@pytest.fixture
def capture() -> Iterator[Capture]:
    captured = Capture()
    yield captured
    captured.close()


def worker_lines(worker: WorkerProcess, until: str, timeout: float = 15.0, count: int = 1) -> list[dict[str, Any]]:
    """Every line of the worker's log, parsed (each must be JSON), once ``count`` lines contain ``until``.

    A run is recorded finished before Celery writes the trace line of the delivery that finished
    it: a test counting those lines waits for them rather than racing the worker's log.
    """
    deadline = time.monotonic() + timeout
    while True:
        text = worker.log.read_text(errors="replace")
        if text.count(until) >= count or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    parsed = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"{worker.log.name}:{number} is not a JSON line: {line!r}\n{text[-3000:]}")
    return parsed


def test_a_run_is_reconstructed_from_its_logs_alone(orchestra: Orchestra, capture: Capture) -> None:  # noqa: F811
    orchestra.extra_env["ORCH_LOG__FORMAT"] = "json"
    worker = orchestra.worker(pool="prefork", concurrency=2)
    submitter = Coordinator(
        orchestra.store,
        CeleryDispatcher(orchestra.app),
        base_policy=base_policy(orchestra.settings.defaults),
        lease_seconds=LEASE,
        observers=Observers(LogObserver(capture.logger)),
    )
    run_id = submitter.submit(orchestra.workflow(WORKFLOW)).run_id
    record = orchestra.wait(run_id)
    assert record.status is RunStatus.FAILED, record
    assert {s: r.status.value for s, r in record.steps.items()} == {
        "flaky": "succeeded",
        "chatty": "succeeded",
        "skipped": "skipped",
        "boom": "failed",
    }
    worker_lines(worker, until='"event": "run.finished"')
    # flaky twice, chatty, skipped, boom: every delivery has Celery's trace line (a failed step's too)
    lines = capture.lines() + worker_lines(worker, until="] succeeded in ", count=5)
    assert all(line["timestamp"].endswith("Z") and line["level"] and line["logger"] for line in lines)

    # The state changes, step by step, are the run's history.
    events = sorted(
        (x for x in lines if x["logger"].startswith("orchestrator.events") and x.get("run_id") == run_id),
        key=lambda x: x["timestamp"],
    )
    logged: dict[str | None, list[str]] = {}
    for line in events:
        if line["event"] != "step.requeued" and line.get("item") is None:
            logged.setdefault(line.get("step"), []).append(line["event"])
    recorded: dict[str | None, list[str]] = {}
    for event in orchestra.store.runs.history(run_id, "-", 1000):
        scope = "step" if event.step else "run"
        recorded.setdefault(event.step, []).append(f"{scope}.{event.event.value}")
    assert logged == recorded
    assert recorded["flaky"] == ["step.queued", "step.started", "step.retrying", "step.started", "step.succeeded"]
    assert recorded["skipped"] == ["step.queued", "step.started", "step.skipped"]

    by_event = {(x["event"], x.get("step"), x.get("attempt")): x for x in events}
    submitted = by_event[("run.submitted", None, None)]
    assert submitted["workflow"] == "logged" and submitted["trigger"] == "cli"
    retrying = by_event[("step.retrying", "flaky", 1)]
    assert retrying["error_type"] == "ConnectionError" and retrying["delay"] > 0 and "f failed" in retrying["error"]
    failed = by_event[("step.failed", "boom", 1)]
    assert failed["error_type"] == "ValueError" and failed["level"] == "warning"
    assert by_event[("run.finished", None, None)]["status"] == "failed"
    for step, state in record.steps.items():
        started = [x for x in events if x["event"] == "step.started" and x["step"] == step]
        assert started[-1]["worker"] == state.worker and started[-1]["task_id"] == state.task_id

    # Every line written while a step ran says which run, step, attempt, delivery and worker it belongs to.
    context_lines = [x for x in lines if x.get("task") == "orchestrator.step" and x.get("run_id") == run_id]
    user = [x for x in context_lines if x["logger"] == "user.code"]
    assert len(user) == 1 and user[0]["event"] == "user code says c", lines
    chatty = record.steps["chatty"]
    expected = {"run_id": run_id, "workflow": "logged", "step": "chatty", "attempt": 1, "worker": chatty.worker}
    assert {k: user[0][k] for k in expected} == expected and user[0]["task_id"] == chatty.task_id
    printed = [x for x in context_lines if x["logger"] == "celery.redirected"]
    assert [x["event"] for x in printed] == ["chatty prints c"] and printed[0]["step"] == "chatty"
    celery_done = re.compile(r"Task \S+\[([0-9a-f-]+)\] succeeded in")  # the step's task name, as a shadow
    done = [x for x in lines if celery_done.match(x["event"])]
    assert len(done) == 5, done  # flaky twice, chatty, skipped, boom: every delivery (a failed step's too)
    for line in done:
        assert all(line.get(k) is not None for k in CONTEXT), line
        assert line["task_id"] == celery_done.match(line["event"]).group(1)  # type: ignore[union-attr]
        assert line["run_id"] == run_id and line["workflow"] == "logged"
    received = [x for x in lines if re.match(r"Task \S+\[[0-9a-f-]+\] received", x["event"])]
    assert received and all(x["task_id"] in x["event"] for x in received)  # the consumer's lines name the delivery


def test_every_worker_line_is_json_in_the_threads_pool(orchestra: Orchestra) -> None:  # noqa: F811
    # ORCH_LOG__FORMAT unset: a log file is not a terminal, so JSON lines (auto).
    worker = orchestra.worker(pool="threads", concurrency=4)
    run_id = orchestra.submit(
        {"workflow": "threads", "steps": {"a": {"task": "t.chatty", "args": {"name": "one"}}}},
    )
    assert orchestra.wait(run_id).status is RunStatus.SUCCEEDED
    lines = worker_lines(worker, until='"event": "run.finished"')
    starting = [x for x in lines if x["event"] == "worker.starting"]
    assert starting and starting[0]["pool"] == "thread" and "orchestrator.step" in starting[0]["tasks"]
    assert any(x["event"].endswith(" ready.") for x in lines)
    user = [x for x in lines if x["logger"] == "user.code"]
    assert len(user) == 1 and all(user[0].get(k) is not None for k in CONTEXT), user
    after = [x for x in lines if x["timestamp"] > user[0]["timestamp"] and x["logger"] == "celery.worker.strategy"]
    assert all("run_id" not in x for x in after)  # nothing of the step leaks into the lines after it


# --- configure_logging, without processes ------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    for handler in logs._installed:
        root.removeHandler(handler)
    logs._installed.clear()
    root.handlers, root.level = handlers, level
    structlog.reset_defaults()


@pytest.mark.usefixtures("restore_logging")
def test_a_terminal_gets_the_console_renderer() -> None:
    terminal = FakeTerminal()
    assert configure_logging(Settings(), "test", stream=terminal) == "console"
    with step_context(run_id="r1", step="load", attempt=2, task_id="t1", worker="w@h", workflow="wf"):
        logging.getLogger("user.code").warning("hello %s", "there")
    text = terminal.getvalue()
    assert "hello there" in text and "run_id" in text and "r1" in text and "step" in text
    assert not text.lstrip().startswith("{")


@pytest.mark.usefixtures("restore_logging")
def test_json_unless_a_terminal_and_idempotent() -> None:
    stream = io.StringIO()
    assert configure_logging(Settings(), "test", stream=stream) == "json"
    assert configure_logging(Settings(log={"format": "json"}), "api", stream=stream, level="DEBUG") == "json"
    assert configure_logging(Settings(log={"format": "json"}), "api", stream=FakeTerminal()) == "json"
    assert configure_logging(Settings(log={"format": "console"}), "api", stream=io.StringIO()) == "console"
    root = logging.getLogger()
    assert sum(handler in logs._installed for handler in root.handlers) == 1
    configure_logging(Settings(log={"level": "WARNING"}), "api", stream=stream)
    assert root.level == logging.WARNING
    logging.getLogger("quiet").info("not shown")
    structlog.get_logger("native").warning("native.event", token=SecretStr("s3cret"), n=1)
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["event"] == "native.event" and line["token"] == "**********" and line["component"] == "api"
    assert "s3cret" not in stream.getvalue() and "not shown" not in stream.getvalue()


def test_a_republish_is_not_logged_as_a_second_queued() -> None:
    buffer = io.StringIO()
    logger = logging.getLogger("orchestrator.events.unit")
    logger.propagate, logger.level = False, logging.DEBUG
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(formatter("json", "test"))
    logger.addHandler(handler)
    try:
        observe = LogObserver(logger)
        observe(Change(EventKind.QUEUED, "r", "wf", "a", attempt=1))
        observe(Change(EventKind.RETRYING, "r", "wf", "a", attempt=1, task_id="t1", delay=0.5))
        observe(Change(EventKind.QUEUED, "r", "wf", "a", attempt=2, delay=0.5))
        observe(Change(EventKind.CANCELLED, "r", "wf", started_by="user:ann"))
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert [(x["event"], x["level"]) for x in lines] == [
        ("step.queued", "info"),
        ("step.retrying", "warning"),
        ("step.requeued", "debug"),
        ("run.cancelled", "info"),
    ]
    assert lines[3]["by"] == "user:ann" and "step" not in lines[3]
