"""Fault injection over real processes: the integration harness, extended.

:class:`Harness` is the integration suite's :class:`~tests.integration.conftest.Orchestra` with
two changes: workers run ``tests.reliability.worker_app`` (the production app plus kombu transport
options from ``ORCH_TEST_BROKER_TRANSPORT``) and also import ``tests.reliability.tasks``; and its
reads tolerate a store that is down for a while (the Redis-restart scenario).

Each scenario reports how long recovery took through the ``recovery`` fixture: the figure is
printed, attached to the test as a junit property, summed up at the end of the session and
written as JSON (``ORCH_RELIABILITY_RESULTS``, default ``$TMPDIR/orchestrator-reliability.json``).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from orchestrator.engine.records import RunRecord
from tests.integration.conftest import (
    LEASE,
    Orchestra,
    WorkerProcess,
    orchestra,  # noqa: F401  (re-exported fixture)
    redis_server,  # noqa: F401  (re-exported fixture)
)

WORKER_APP = "tests.reliability.worker_app"
TASK_MODULES = "tests.integration.tasks,tests.reliability.tasks"
STORE_DOWN = (RedisConnectionError, RedisTimeoutError, ConnectionError)
RESULTS_PATH = Path(
    os.environ.get("ORCH_RELIABILITY_RESULTS") or Path(tempfile.gettempdir()) / "orchestrator-reliability.json"
)
_RESULTS: list[dict[str, Any]] = []


@dataclass
class Harness(Orchestra):
    """An :class:`Orchestra` whose workers run the reliability worker app."""

    worker_app: str = WORKER_APP

    def env(self) -> dict[str, str]:
        env = super().env()
        env["ORCH_TASK_MODULES"] = TASK_MODULES
        env.update(self.extra_env)
        return env

    def hostname(self, worker: WorkerProcess) -> str:
        return f"{worker.name}@{self.prefix}"

    def record(self, run_id: str) -> RunRecord | None:
        """The run's record, or None while the store is unreachable."""
        try:
            return self.coordinator.get(run_id)
        except STORE_DOWN:
            return None

    def wait(self, run_id: str, timeout: float = 60.0) -> RunRecord:
        """Wait for the run to finish, riding out store outages."""
        deadline = time.monotonic() + timeout
        while True:
            record = self.record(run_id)
            if record is not None and record.status.finished:
                return record
            if time.monotonic() > deadline:
                raise AssertionError(f"run not finished after {timeout}s: {record}\n{self.logs()}")
            time.sleep(0.05)

    def logs(self, tail: int = 3000) -> str:
        return "\n".join(f"--- {w.name}\n{w.log.read_text(errors='replace')[-tail:]}" for w in self.workers)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``predicate`` until it holds; returns the monotonic time it first held."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return time.monotonic()
        except STORE_DOWN:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout}s")
        time.sleep(0.02)


def received(worker: WorkerProcess, task_id: str) -> int:
    """How many times the worker's consumer received the message with this task id."""
    pattern = re.compile(rf"\[{re.escape(task_id)}\] received")
    return len(pattern.findall(worker.log.read_text(errors="replace")))


def received_ids(worker: WorkerProcess, task: str) -> dict[str, int]:
    """Task id -> times received, for messages whose (shadow) name starts with ``task``."""
    pattern = re.compile(rf"Task {re.escape(task)}\S*\[([0-9a-f-]{{36}})\] received")
    counts: dict[str, int] = {}
    for task_id in pattern.findall(worker.log.read_text(errors="replace")):
        counts[task_id] = counts.get(task_id, 0) + 1
    return counts


def dropped(worker: WorkerProcess) -> list[str]:
    """The verdicts of deliveries the claim dropped (``busy``, ``stale``, ``done``...)."""
    return re.findall(r"dropping delivery \S+ of \S+ \(attempt \d+\): (\w+)", worker.log.read_text(errors="replace"))


def timestamp(iso: str | None) -> float:
    """Epoch seconds of a run record's ISO timestamp."""
    assert iso is not None
    return datetime.fromisoformat(iso).timestamp()


@pytest.fixture
def harness(redis_url: str, key_prefix: str, redis_client: Redis, tmp_path: Path) -> Iterator[Callable[..., Harness]]:
    """Factory: ``harness(broker_url=..., store_url=..., lease=..., **env)`` builds a :class:`Harness`
    (``lease``: seconds of a claim and of a publish guard, the integration harness's 3 s by default).

    Broker and store default to the shared test Redis. Side effects (``tests/*/tasks.py``) are
    always recorded in the shared test Redis, under the test's key prefix, so an outage or a
    restart of the broker or store cannot roll them back or hide them.
    """
    os.environ["ORCH_STORE_URL"] = redis_url
    os.environ["ORCH_KEY_PREFIX"] = key_prefix
    made: list[Harness] = []

    def make(
        *, broker_url: str | None = None, store_url: str | None = None, lease: float | None = None, **env: str
    ) -> Harness:
        extra = {"ORCH_TEST_EFFECTS_URL": redis_url, **env}
        if broker_url:
            extra["ORCH_BROKER_URL"] = broker_url
        if store_url:
            extra["ORCH_STORE_URL"] = store_url
        directory = tmp_path / f"harness-{len(made)}"
        directory.mkdir()
        built = Harness(
            store_url or redis_url, key_prefix, directory, redis_client, extra_env=extra, lease=lease or LEASE
        )
        made.append(built)
        return built

    try:
        yield make
    finally:
        for built in made:
            built.close()
        os.environ.pop("ORCH_STORE_URL", None)
        os.environ.pop("ORCH_KEY_PREFIX", None)


@pytest.fixture
def recovery(request: pytest.FixtureRequest, record_property: Callable[[str, object], None]) -> Callable[..., None]:
    """``recovery(seconds, what, **details)`` reports a scenario's measured recovery time."""

    def report(seconds: float, what: str, **details: Any) -> None:
        name = request.node.name
        extra = ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in details.items())
        print(f"\n[reliability] {name}: {what} = {seconds:.2f}s" + (f" ({extra})" if extra else ""))
        record_property("recovery_seconds", round(seconds, 3))
        record_property("recovery_measures", what)
        for key, value in details.items():
            record_property(key, value)
        _RESULTS.append({"test": name, "what": what, "seconds": round(seconds, 3), **details})

    return report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _RESULTS:
        return
    terminalreporter.write_sep("-", "reliability: measured recovery")
    for result in _RESULTS:
        terminalreporter.write_line(f"{result['test']:<60} {result['seconds']:>8.2f}s  {result['what']}")
    try:
        RESULTS_PATH.write_text(json.dumps(_RESULTS, indent=1) + "\n")
        terminalreporter.write_line(f"written to {RESULTS_PATH}")
    except OSError as exc:
        terminalreporter.write_line(f"could not write {RESULTS_PATH}: {exc}")
