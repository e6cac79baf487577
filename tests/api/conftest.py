"""A real API server for the tests of ``tests/api``: ``orchestrator api`` in a subprocess, with a real worker.

One server per test module (``api``, module-scoped): its own key prefix on the test Redis, its own
``ORCH_WORKFLOWS_DIR`` and a token of each scope. Tests stay apart by workflow: each asks
:meth:`ApiServer.workflow` for a workflow of its own (a new file in the directory, which the
server's registry picks up), so the runs it lists and filters are its own.
"""

from __future__ import annotations

import itertools
import json
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis

from config import Settings
from orchestrator.client import AsyncClient, Client
from tests.integration.conftest import ROOT, Orchestra, free_port

NAMES = {"read": "reader", "submit": "svc", "admin": "ops"}
"""The name of each scope's token: runs and histories record ``token:<name>``."""
TEMPLATES: dict[str, dict[str, Any]] = {
    "quick": {
        "params": {"n": {"type": "integer", "default": 1, "minimum": 1}, "label": {"type": "string", "default": "x"}},
        "steps": {"only": {"task": "t.effect", "args": {"name": "${run.id}", "value": "${params.n}"}}},
    },
    "slow": {
        "params": {"seconds": {"type": "number", "default": 20, "minimum": 0}},
        "steps": {"hold": {"task": "t.block", "args": {"name": "${run.id}", "seconds": "${params.seconds}"}}},
    },
    "failing": {
        "steps": {"boom": {"task": "t.flaky", "args": {"name": "${run.id}", "failures": 99, "error": "ValueError"}}},
    },
}
"""Workflow bodies by kind; :meth:`ApiServer.workflow` names each copy."""


@dataclass
class ApiServer:
    """A running ``orchestrator api`` and what it was started with."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path
    workflows_dir: Path
    tokens: dict[str, str]
    orchestra: Orchestra
    _names: Iterator[int] = field(default_factory=itertools.count)

    def workflow(self, kind: str = "quick") -> str:
        """A new workflow of this kind (``quick``, ``slow``, ``failing``) in the server's directory; its name."""
        name = f"{kind}-{next(self._names)}-{uuid.uuid4().hex[:6]}"
        body = {"workflow": name, **TEMPLATES[kind]}
        (self.workflows_dir / f"{name}.json").write_text(json.dumps(body), encoding="utf-8")
        return name

    def http(self, scope: str | None = "admin", **options: Any) -> httpx.Client:
        """A plain httpx client, with the token of ``scope`` (None: no token)."""
        headers = {"Authorization": f"Bearer {self.tokens[scope]}"} if scope else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **options)

    def client(self, scope: str = "admin") -> Client:
        return Client(self.url, self.tokens[scope])

    def async_client(self, scope: str = "admin") -> AsyncClient:
        return AsyncClient(self.url, self.tokens[scope])

    def settings(self) -> Settings:
        """Settings for direct mode on the same broker, store and workflows."""
        return Settings(**self.orchestra.settings_values(), workflows_dir=self.workflows_dir)

    def wait_healthy(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the API exited:\n{self.log.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the API did not answer /healthz in {timeout}s:\n{self.log.read_text()[-3000:]}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM by pid (uvicorn shuts down gracefully), SIGKILL if it is still there after ``timeout``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_api(orchestra: Orchestra, workflows_dir: Path, tokens: dict[str, str]) -> ApiServer:
    port = free_port()
    env = orchestra.env()
    env.update(
        ORCH_WORKFLOWS_DIR=str(workflows_dir),
        ORCH_API_TOKENS=",".join(f"{NAMES[scope]}:{token}:{scope}" for scope, token in tokens.items()),
        ORCH_API__MAX_WAIT="10",
    )
    log = orchestra.tmp / "api.log"
    command = [sys.executable, "-m", "orchestrator", "api", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
    server = ApiServer(f"http://127.0.0.1:{port}", process, log, workflows_dir, tokens, orchestra)
    try:
        server.wait_healthy()
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="module")
def api(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[ApiServer]:
    """The module's API server and worker, on a key prefix of their own (deleted afterwards).

    A test module's ``API_ENV`` dict, when it has one, is added to their environment.
    """
    prefix = f"test-api-{uuid.uuid4().hex[:10]}"
    tmp = tmp_path_factory.mktemp("api")
    workflows_dir = tmp / "workflows"
    workflows_dir.mkdir()
    redis = Redis.from_url(redis_url, decode_responses=True)
    orchestra = Orchestra(redis_url, prefix, tmp, redis, extra_env=dict(getattr(request.module, "API_ENV", {})))
    tokens = {scope: secrets.token_urlsafe(16) for scope in NAMES}
    server: ApiServer | None = None
    try:
        orchestra.worker(concurrency=4)
        server = start_api(orchestra, workflows_dir, tokens)
        yield server
    finally:
        if server is not None:
            server.stop()
        for worker in orchestra.workers:
            worker.kill()  # a slow run's step may still sleep: no warm shutdown to wait for
        orchestra.close()
        keys = list(redis.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 500):
            redis.delete(*keys[start : start + 500])
        redis.close()


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The ``error`` object of an error answer, checked to be the one shape."""
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) <= {"type", "message", "field"} and {"type", "message"} <= set(error), body
    assert isinstance(error["type"], str) and isinstance(error["message"], str) and error["message"], body
    return dict(error)
