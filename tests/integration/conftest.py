"""Real processes over real Redis: ``celery -A workers.app worker`` subprocesses and a coordinator.

Fixtures are factories that own their teardown: every worker a test starts is stopped, by
process group, when the test ends.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from config import Settings
from orchestrator.definition.loader import build_workflow
from orchestrator.definition.models import Workflow
from orchestrator.engine.coordinator import Coordinator
from orchestrator.engine.records import RunRecord
from orchestrator.plan.policy import base_policy
from orchestrator.services import dispatcher_for
from orchestrator.store import RedisRunStore
from workers.app import create_app

ROOT = Path(__file__).resolve().parents[2]
LEASE = 3.0
# The system's server (TLS-capable) rather than a redis-server shim another package may put first on PATH.
REDIS_SERVER = "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else "redis-server"


@dataclass
class WorkerProcess:
    """A ``celery worker`` subprocess in its own process group."""

    process: subprocess.Popen[bytes]
    log: Path
    name: str

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker {self.name} exited:\n{self.log.read_text()[-3000:]}")
            if " ready." in self.log.read_text(errors="replace"):
                return
            time.sleep(0.1)
        raise RuntimeError(f"worker {self.name} not ready after {timeout}s:\n{self.log.read_text()[-3000:]}")

    def children(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True)
        return [int(pid) for pid in out.stdout.split()]

    def kill(self) -> None:
        """SIGKILL the whole node: main process and pool children."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Orchestra:
    """A namespace on the test Redis with a coordinator and a worker factory."""

    redis_url: str
    prefix: str
    tmp: Path
    redis: Redis
    workers: list[WorkerProcess] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    worker_app: str = "workers.app"
    lease: float = LEASE
    """Seconds of a claim and of a publish guard; the sweeper re-dispatches what outlives it."""

    def __post_init__(self) -> None:
        self.settings = Settings(**self.settings_values())
        self.app = create_app(self.settings)
        self.store = RedisRunStore.connect(
            str(self.settings.resolved_store_url),
            prefix=self.prefix,
            shards=self.settings.store_shards,
            sentinel_master=self.settings.sentinel_master,
        )
        self.coordinator = Coordinator(
            self.store,
            # As orchestrator.services wires it: on the store's own Redis, the store pushes the roots.
            dispatcher_for(self.app, str(self.settings.resolved_store_url), self.store.keys),
            base_policy=base_policy(self.settings.defaults),
            lease_seconds=self.lease,
        )

    def settings_values(self) -> dict[str, Any]:
        return {
            "broker_url": self.extra_env.get("ORCH_BROKER_URL", self.redis_url),
            "store_url": self.extra_env.get("ORCH_STORE_URL", self.redis_url),
            "sentinel_master": self.extra_env.get("ORCH_SENTINEL_MASTER"),
            "key_prefix": self.prefix,
            "task_modules": ["tests.integration.tasks"],
            "worker": {"lease": self.lease, "sweep_interval": 0.5},
        }

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
        env.update(
            ORCH_BROKER_URL=self.redis_url,
            ORCH_STORE_URL=self.redis_url,
            ORCH_KEY_PREFIX=self.prefix,
            ORCH_TASK_MODULES="tests.integration.tasks",
            ORCH_WORKER__LEASE=str(self.lease),
            ORCH_WORKER__SWEEP_INTERVAL="0.5",
            ORCH_TEST_EFFECTS_URL=self.redis_url,
            PYTHONPATH=str(ROOT),
        )
        env.update(self.extra_env)
        return env

    def worker(self, *args: str, name: str | None = None, pool: str = "prefork", concurrency: int = 2) -> WorkerProcess:
        """Start a worker (waits until it is ready); it is stopped at the end of the test."""
        name = name or f"w{len(self.workers) + 1}"
        log = self.tmp / f"{name}.log"
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            self.worker_app,
            "worker",
            "--hostname",
            f"{name}@{self.prefix}",
            "--pool",
            pool,
            "--concurrency",
            str(concurrency),
            "--loglevel",
            "INFO",
            "--without-mingle",
            "--without-gossip",
            *args,
        ]
        with log.open("wb") as sink:
            process = subprocess.Popen(
                command, cwd=ROOT, env=self.env(), stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )
        worker = WorkerProcess(process, log, name)
        self.workers.append(worker)
        worker.wait_ready()
        return worker

    def workflow(self, data: Mapping[str, Any]) -> Workflow:
        return build_workflow(dict(data))

    def submit(self, data: Mapping[str, Any], params: Mapping[str, Any] | None = None) -> str:
        return self.coordinator.submit(self.workflow(data), params).run_id

    def wait(self, run_id: str, timeout: float = 60.0) -> RunRecord:
        deadline = time.monotonic() + timeout
        record = self.coordinator.get(run_id)
        while not record.status.finished:
            if time.monotonic() > deadline:
                logs = "\n".join(f"--- {w.name}\n{w.log.read_text()[-2000:]}" for w in self.workers)
                raise AssertionError(f"run not finished after {timeout}s: {record.model_dump_json(indent=1)}\n{logs}")
            time.sleep(0.05)
            record = self.coordinator.get(run_id)
        return record

    def effects(self) -> dict[str, int]:
        prefix = f"{self.prefix}:effects:"
        found = {}
        for key in self.redis.scan_iter(match=f"{prefix}*"):
            if self.redis.type(key) == "string":
                found[key.removeprefix(prefix)] = int(self.redis.get(key) or 0)
        return found

    def started(self) -> list[str]:
        return list(self.redis.lrange(f"{self.prefix}:effects:started", 0, -1))

    def wait_started(self, name: str, timeout: float = 20.0) -> None:
        """Wait until the test task named ``name`` (``t.block``) has announced its start."""
        deadline = time.monotonic() + timeout
        while name not in self.started():
            assert time.monotonic() < deadline, f"{name} never started: {self.started()}"
            time.sleep(0.02)

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.app.close()
        self.store.close()


@contextlib.contextmanager
def running_orchestra(
    redis_url: str,
    key_prefix: str,
    redis_client: Redis,
    extra_env: Mapping[str, str] | None = None,
    *,
    lease: float = LEASE,
) -> Iterator[Orchestra]:
    """An :class:`Orchestra` in a temporary directory, with the environment the task module reads in
    process (it records effects in the test Redis), closed afterwards; ``extra_env`` goes to its
    settings and workers (another ``ORCH_STORE_URL``, say)."""
    os.environ["ORCH_STORE_URL"] = redis_url  # the task module records effects here (in-process too)
    os.environ["ORCH_KEY_PREFIX"] = key_prefix
    with tempfile.TemporaryDirectory(prefix="orch-test-") as tmp:
        orch = Orchestra(redis_url, key_prefix, Path(tmp), redis_client, extra_env=dict(extra_env or {}), lease=lease)
        try:
            yield orch
        finally:
            orch.close()
            os.environ.pop("ORCH_STORE_URL", None)
            os.environ.pop("ORCH_KEY_PREFIX", None)


@pytest.fixture
def orchestra(redis_url: str, key_prefix: str, redis_client: Redis) -> Iterator[Orchestra]:
    with running_orchestra(redis_url, key_prefix, redis_client) as orch:
        yield orch


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RedisServer:
    """A ``redis-server`` of the test's own, on a free port, in a temporary directory."""

    port: int
    directory: Path
    args: tuple[str, ...]
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        command = [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            *self.args,
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                if Redis(port=self.port, socket_connect_timeout=0.2).ping():
                    return self
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Factory: ``redis_server(*extra_args)`` starts a server; all are killed after the test."""
    servers: list[RedisServer] = []

    def start(*args: str, port: int | None = None) -> RedisServer:
        directory = tmp_path / f"redis-{len(servers)}"
        directory.mkdir()
        server = RedisServer(port or free_port(), directory, args).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill()
