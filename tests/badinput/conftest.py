"""Fixtures of the bad-input suite: a seeded run store to compare, the CLI, and real workers.

Every bad input must leave the run store as it was. The store is seeded with one real run first
(a run hash, its steps, a queued message), so "as it was" means more than "still empty": a bad
``cancel`` or ``retry`` could otherwise damage an existing run unnoticed.
"""

from __future__ import annotations

import re
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from typer.testing import CliRunner

from config import Settings, get_settings
from orchestrator.broker.dispatch import CeleryDispatcher
from orchestrator.cli import app
from orchestrator.definition.loader import build_workflow
from orchestrator.engine.coordinator import Coordinator
from orchestrator.plan.policy import base_policy
from orchestrator.store import RedisRunStore
from orchestrator.store.connections import redis_client as store_client
from orchestrator.store.keys import Keys
from tests.integration.conftest import Orchestra
from workers.app import create_app

HERE = Path(__file__).parent
TASK_MODULES = ["tests.integration.tasks", "tests.badinput.tasks"]
# What the CLI is told the workers register, so unknown-task problems do not depend on the environment.
REGISTERED = frozenset({"demo.echo", "demo.fetch", "demo.process", "demo.fail", "bad.returns", "bad.echo"})

# A valid workflow with a param of every type: the target of the bad command lines.
TYPED = """\
workflow: typed
params:
  name: {type: string}
  limit: {type: integer, default: 10, minimum: 1, maximum: 100}
  ratio: {type: number, default: 0.5}
  dry: {type: boolean, default: false}
  ids: {type: array, default: []}
  opts: {type: object, default: {}}
  mode: {type: string, default: fast, enum: [fast, slow]}
steps:
  fetch: {task: demo.fetch, args: {source: "${params.name}", limit: "${params.limit}"}}
  echo: {task: demo.echo, needs: [fetch], args: {ids: "${params.ids}", opts: "${params.opts}"}}
"""
SEED = {"workflow": "seed", "steps": {"only": {"task": "demo.echo", "args": {"x": 1}}}}

Snapshot = dict[str, tuple[str, Any]]


def snapshot(client: Redis, prefix: str) -> Snapshot:
    """Every key under ``prefix`` with its type and value (TTLs aside)."""
    found: Snapshot = {}
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        kind = str(client.type(key))
        value: Any
        if kind == "string":
            value = client.get(key)
        elif kind == "hash":
            value = client.hgetall(key)
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "set":
            value = sorted(client.smembers(key))
        elif kind == "zset":
            value = client.zrange(key, 0, -1, withscores=True)
        else:
            value = None  # gone between SCAN and TYPE, or a type we never write
        found[str(key)] = (kind, value)
    return found


def changed_keys(before: Snapshot, after: Snapshot) -> set[str]:
    """Keys added, removed or changed between two snapshots."""
    return {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}


def flat(text: str) -> str:
    """Output with typer's error box and its line wrapping removed, for substring checks."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


@dataclass
class Store:
    """One namespace of the test Redis, seeded with a real (queued, never run) run."""

    client: Redis
    prefix: str
    seeded: str

    def snapshot(self) -> Snapshot:
        return snapshot(self.client, self.prefix)

    def assert_unchanged(self, before: Snapshot) -> None:
        after = self.snapshot()
        assert changed_keys(before, after) == set(), "the run store changed"


@pytest.fixture(scope="module")
def store(redis_url: str) -> Iterator[Store]:
    """A namespace shared by one module's cases (none of them may write to it), with one seeded run."""
    prefix = f"test-bad-{uuid.uuid4().hex[:10]}"
    client = Redis.from_url(redis_url, decode_responses=True)
    celery = create_app(Settings(broker_url=redis_url, store_url=redis_url, key_prefix=prefix))
    runs = RedisRunStore(store_client(redis_url), Keys(prefix))
    coordinator = Coordinator(runs, CeleryDispatcher(celery), base_policy=base_policy(), lease_seconds=15)
    seeded = coordinator.submit(build_workflow(SEED)).run_id
    celery.close()
    try:
        yield Store(client, prefix, seeded)
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        runs.redis.close()
        client.close()


@dataclass
class Cli:
    """``orchestrator`` through typer's runner, against :class:`Store`'s namespace."""

    runner: CliRunner
    store: Store
    files: Path

    def invoke(self, *args: str) -> tuple[int, str, str]:
        """Run a command; a crash (any exception but the exit typer raises) fails the test."""
        result = self.runner.invoke(app, list(args))
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"`orchestrator {' '.join(args)[:200]}` crashed") from result.exception
        return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def cli(store: Store, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    monkeypatch.setenv("ORCH_BROKER_URL", redis_url)
    monkeypatch.setenv("ORCH_STORE_URL", redis_url)
    monkeypatch.setenv("ORCH_KEY_PREFIX", store.prefix)
    monkeypatch.delenv("ORCH_WORKFLOWS_DIR", raising=False)
    monkeypatch.setattr("orchestrator.cli.definitions.known_tasks", lambda: REGISTERED)
    monkeypatch.setattr("orchestrator.cli.runs.known_tasks", lambda: REGISTERED)
    (tmp_path / "typed.yaml").write_text(TYPED, encoding="utf-8")
    get_settings.cache_clear()
    yield Cli(CliRunner(), store, tmp_path)
    get_settings.cache_clear()


# --- real workers --------------------------------------------------------------------------------


class BadInputOrchestra(Orchestra):
    """The integration harness with this suite's tasks imported too, in the workers and in process."""

    def settings_values(self) -> dict[str, Any]:
        return {**super().settings_values(), "task_modules": TASK_MODULES}


@pytest.fixture(scope="module")
def orchestra(redis_url: str) -> Iterator[BadInputOrchestra]:
    """One worker for a whole module (starting one takes seconds); runs share its namespace."""
    prefix = f"test-bad-{uuid.uuid4().hex[:10]}"
    client = Redis.from_url(redis_url, decode_responses=True)
    with tempfile.TemporaryDirectory(prefix="orch-badinput-") as tmp:
        orch = BadInputOrchestra(
            redis_url, prefix, Path(tmp), client, extra_env={"ORCH_TASK_MODULES": ",".join(TASK_MODULES)}
        )
        try:
            orch.worker(concurrency=2)
            yield orch
        finally:
            orch.close()
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start : start + 500])
            client.close()


def runs_own_keys(orch: Orchestra, run_id: str, workflow: str) -> Callable[[str], bool]:
    """Whether a key may change because run ``run_id`` exists: its own keys and the indexes naming it
    (the retention and history queues among them).

    The broker's bookkeeping (queues, unacked messages, bindings) and the sweeper's lock change
    whenever workers run; they are not the run store.
    """
    plan_id = orch.store.runs.plan_of(run_id)[0].plan_id
    keys = Keys(orch.prefix)
    own = {keys.runs(), keys.runs_of(workflow), keys.plan(plan_id), keys.expiring(), keys.archiving()}

    def allowed(key: str) -> bool:
        return (
            f"{{{run_id}}}" in key
            or key in own
            or key.startswith(keys.broker_prefix())
            or key.startswith(f"{orch.prefix}:lock:")
        )

    return allowed
