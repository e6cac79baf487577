"""deploy/redis/users.acl is enough, and no more: real components run on a Redis that loads it.

A private ``redis-server --aclfile`` gets a copy of the file plus one ``admin`` user (the test's own,
to plant keys and read ``ACL LOG``). A worker runs with the worker user, the coordinator submits a
workflow with the api user, Flower starts with the flower user; then the worker user is shown
refused what it must never do.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis import Redis
from redis.exceptions import NoPermissionError, ResponseError

from orchestrator.engine.records import RunStatus
from tests.integration.conftest import REDIS_SERVER, ROOT, Orchestra, free_port

pytestmark = pytest.mark.integration
ACL_FILE = ROOT / "deploy" / "redis" / "users.acl"
ADMIN = "user admin on >admin-test ~* &* +@all"


def passwords() -> dict[str, str]:
    """user -> its password, read from the file (``>password`` rules)."""
    found = {}
    for line in ACL_FILE.read_text().splitlines():
        parts = line.split()
        secret = next((p[1:] for p in parts if p.startswith(">")), None)
        if parts and parts[0] == "user" and secret:
            found[parts[1]] = secret
    return found


@dataclass
class AclRedis:
    port: int
    process: subprocess.Popen[bytes]

    def url(self, user: str) -> str:
        return f"redis://{user}:{passwords()[user]}@127.0.0.1:{self.port}/0"

    def admin(self) -> Redis:
        return Redis(port=self.port, username="admin", password="admin-test", decode_responses=True)

    def denials(self) -> list[dict[str, object]]:
        return [entry for entry in self.admin().acl_log() if entry.get("username") != "admin"]


@pytest.fixture
def acl_redis(tmp_path: Path) -> Iterator[AclRedis]:
    acl = tmp_path / "users.acl"
    acl.write_text(ACL_FILE.read_text() + ADMIN + "\n")
    port = free_port()
    command = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path)]
    command += ["--save", "", "--appendonly", "no", "--aclfile", str(acl)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = AclRedis(port, process)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                server.admin().ping()
                break
            except Exception:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield server
    finally:
        process.kill()
        process.wait(10)


def test_the_file_turns_the_default_user_off_and_names_every_component() -> None:
    users = {line.split()[1]: line.split()[2:] for line in ACL_FILE.read_text().splitlines() if line.strip()}
    assert users["default"][0] == "off"
    assert {"worker", "api", "beat", "flower"} <= set(users)
    for name in ("worker", "api", "beat", "flower"):
        rules = users[name]
        assert "-@all" in rules and "-@dangerous" in rules and "-@admin" in rules, name
        assert "~*" not in rules and "allkeys" not in rules and "&*" not in rules, name


def test_components_run_a_workflow_with_their_own_users(acl_redis: AclRedis, tmp_path: Path) -> None:
    admin = acl_redis.admin()
    os.environ["ORCH_KEY_PREFIX"] = "orch"
    os.environ["ORCH_STORE_URL"] = acl_redis.url("worker")
    orchestra = Orchestra(acl_redis.url("api"), "orch", tmp_path, admin)  # the coordinator: the api user
    worker_url = acl_redis.url("worker")
    orchestra.extra_env = {"ORCH_BROKER_URL": worker_url, "ORCH_STORE_URL": worker_url}
    orchestra.extra_env["ORCH_TEST_EFFECTS_URL"] = worker_url
    try:
        orchestra.worker(concurrency=2)
        run_id = orchestra.submit(
            {
                "workflow": "acl",
                "params": {"xs": {"type": "array", "default": [1, 2, 3]}},
                "steps": {
                    "a": {"task": "t.effect", "args": {"name": "a"}},
                    "fan": {"task": "t.square", "needs": ["a"], "for_each": "${params.xs}", "args": {"x": "${item}"}},
                },
            }
        )
        record = orchestra.wait(run_id, timeout=60)
        assert record.status is RunStatus.SUCCEEDED, record
        assert record.steps["fan"].output == [1, 4, 9]
    finally:
        orchestra.close()
        os.environ.pop("ORCH_KEY_PREFIX", None)
        os.environ.pop("ORCH_STORE_URL", None)
    assert acl_redis.denials() == []


def test_flower_runs_with_its_user(acl_redis: AclRedis, tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCH_", "FLOWER_"))}
    env.update(
        ORCH_BROKER_URL=acl_redis.url("flower"),
        ORCH_STORE_URL=acl_redis.url("flower"),
        FLOWER_BASIC_AUTH="ops:secret",
        PYTHONPATH=str(ROOT),
    )
    log = tmp_path / "flower.log"
    command = [sys.executable, "-m", "celery", "-A", "workers.app", "flower", f"--port={port}", "--address=127.0.0.1"]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        base = f"http://127.0.0.1:{port}"
        assert _get(f"{base}/healthcheck", process, log) == (200, b"OK")
        auth = "Basic " + base64.b64encode(b"ops:secret").decode()
        status, _ = _get(f"{base}/api/workers?refresh=1", process, log, headers={"Authorization": auth})
        assert status == 200
        status, _ = _get(f"{base}/api/workers", process, log, headers={})
        assert status == 401
        time.sleep(0.5)  # the event receiver has subscribed by now
        assert process.poll() is None, log.read_text()[-3000:]
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    assert acl_redis.denials() == [], log.read_text()[-3000:]


def _get(
    url: str, process: subprocess.Popen[bytes], log: Path, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    deadline = time.monotonic() + 30
    while True:
        try:
            request = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(request, timeout=5) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), b""
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"flower did not answer:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.2)


@pytest.mark.parametrize(
    "command",
    [
        ("FLUSHDB",),
        ("FLUSHALL",),
        ("CONFIG", "GET", "maxmemory"),
        ("CONFIG", "SET", "appendonly", "no"),
        ("KEYS", "other:*"),
        ("KEYS", "*"),
        ("GET", "other:secret"),
        ("SET", "other:secret", "x"),
        ("CLIENT", "KILL", "ID", "1"),
        ("SWAPDB", "0", "1"),
        ("SCRIPT", "FLUSH"),
        ("FUNCTION", "FLUSH"),
        ("ACL", "LIST"),
        ("SHUTDOWN",),
        ("MONITOR",),
        ("SUBSCRIBE", "other-channel"),
    ],
)
def test_the_worker_user_is_refused(acl_redis: AclRedis, command: tuple[str, ...]) -> None:
    acl_redis.admin().set("other:secret", "not yours")
    worker = Redis.from_url(acl_redis.url("worker"))
    with pytest.raises((NoPermissionError, ResponseError), match="NOPERM|permission"):
        worker.execute_command(*command)
    assert acl_redis.admin().get("other:secret") == "not yours"
    assert worker.set("orch:mine", "1")  # its own namespace stays writable


def test_the_keda_user_measures_queue_depth_and_nothing_else(acl_redis: AclRedis) -> None:
    admin = acl_redis.admin()
    admin.rpush("orch:broker:default", "m1", "m2")
    admin.rpush("orch:broker:default\x06\x163", "m3")
    admin.hset("orch:run:{r1}", "status", "running")
    keda = Redis.from_url(acl_redis.url("keda"))
    assert keda.llen("orch:broker:default") == 2
    assert keda.llen("orch:broker:default\x06\x163") == 1
    for command in (
        ("LRANGE", "orch:broker:default", "0", "-1"),
        ("HGETALL", "orch:run:{r1}"),
        ("LPOP", "orch:broker:default"),
    ):
        with pytest.raises(NoPermissionError):
            keda.execute_command(*command)
    with pytest.raises(NoPermissionError):
        keda.llen("orch:run:{r1}")  # outside the broker's keys
