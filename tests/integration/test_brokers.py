"""RabbitMQ as the broker (run state still in Redis), and the embedded default end to end."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from redis import Redis

from orchestrator.engine.records import RunStatus
from tests.integration.conftest import ROOT, Orchestra, RedisServer, free_port

pytestmark = pytest.mark.integration
AMQP_URL = os.environ.get("ORCH_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def _rabbitmq_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
        return True
    except OSError:
        return False


def test_rabbitmq_broker_runs_a_workflow(redis_url: str, key_prefix: str, redis_client: object, tmp_path: Path) -> None:
    if not _rabbitmq_up():
        if os.environ.get("CI") == "true":
            pytest.fail("RabbitMQ is not reachable on 127.0.0.1:5672")
        pytest.skip("RabbitMQ is not reachable on 127.0.0.1:5672")
    os.environ["ORCH_STORE_URL"] = redis_url
    os.environ["ORCH_KEY_PREFIX"] = key_prefix
    # Queues are shared on the vhost: give this test's steps a queue of their own.
    queue = f"{key_prefix}-steps"
    orchestra = Orchestra(redis_url, key_prefix, tmp_path, redis_client, extra_env={"ORCH_BROKER_URL": AMQP_URL})  # type: ignore[arg-type]
    try:
        orchestra.worker("-Q", queue, concurrency=2)
        run_id = orchestra.submit(
            {
                "workflow": "rabbit",
                "defaults": {"queue": queue},
                "steps": {
                    "a": {"task": "t.effect", "args": {"name": "a"}},
                    "b": {"task": "t.effect", "args": {"name": "b"}},
                    "c": {"task": "t.effect", "needs": ["a", "b"], "args": {"name": "c"}},
                    "fan": {"task": "t.square", "needs": ["c"], "for_each": "${params.xs}", "args": {"x": "${item}"}},
                },
                "params": {"xs": {"type": "array", "default": [1, 2, 3]}},
            }
        )
        record = orchestra.wait(run_id)
        assert record.status is RunStatus.SUCCEEDED
        assert record.steps["fan"].output == [1, 4, 9]
        assert orchestra.app.conf.broker_url.startswith("amqp://")
    finally:
        orchestra.close()
        os.environ.pop("ORCH_STORE_URL", None)
        os.environ.pop("ORCH_KEY_PREFIX", None)


def test_embedded_default_runs_an_example_end_to_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    env["ORCH_EMBEDDED_DIR"] = str(tmp_path / "embedded")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "orchestrator",
            "run",
            "examples/content-pipeline.yaml",
            "--wait",
            "--json",
            "-p",
            "limit=3",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["status"] == "succeeded"
    assert record["params"] == {"source": "demo-feed", "limit": 3}
    assert record["steps"]["thumbnails"]["output"] == [f"thumb-{i}-128px.png" for i in range(3)]
    assert record["steps"]["publish"]["output"] == {"published": 3, "thumbnails": 3}
    # The embedded server keeps the run: `status` finds it afterwards.
    status = subprocess.run(
        [sys.executable, "-m", "orchestrator", "status", record["run_id"], "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["status"] == "succeeded"


def test_sentinel_urls_for_broker_and_store(
    redis_server: Callable[..., RedisServer], key_prefix: str, tmp_path: Path
) -> None:
    master = redis_server()
    sentinel_port = free_port()
    config = tmp_path / "sentinel.conf"
    config.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\nsentinel monitor main 127.0.0.1 {master.port} 1\n"
        "sentinel down-after-milliseconds main 5000\n"
    )
    sentinel = subprocess.Popen(["redis-server", str(config), "--sentinel"], stdout=subprocess.DEVNULL)
    try:
        url = f"sentinel://127.0.0.1:{sentinel_port}/0"
        env = {"ORCH_BROKER_URL": url, "ORCH_STORE_URL": url, "ORCH_SENTINEL_MASTER": "main"}
        _run_two_steps_through(master.url, key_prefix, tmp_path, env)
    finally:
        sentinel.kill()
        sentinel.wait(10)


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr"
    )
    (directory / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.crt",
    )
    return directory / "ca.crt", directory / "server.crt", directory / "server.key"


def test_tls_rediss_urls_for_broker_and_store(
    redis_server: Callable[..., RedisServer], key_prefix: str, tmp_path: Path
) -> None:
    ca, cert, key = _certificates(tmp_path)
    tls_port = free_port()
    plain = redis_server(
        "--tls-port",
        str(tls_port),
        "--tls-cert-file",
        str(cert),
        "--tls-key-file",
        str(key),
        "--tls-ca-cert-file",
        str(ca),
        "--tls-auth-clients",
        "no",
    )
    url = f"rediss://127.0.0.1:{tls_port}/0?ssl_cert_reqs=required&ssl_ca_certs={ca}"
    orchestra = _run_two_steps_through(plain.url, key_prefix, tmp_path, {"ORCH_BROKER_URL": url, "ORCH_STORE_URL": url})
    assert orchestra.app.conf.broker_url.startswith("rediss://")


def _run_two_steps_through(effects_url: str, key_prefix: str, tmp_path: Path, env: dict[str, str]) -> Orchestra:
    """Run a two-step workflow with broker and store reached as ``env`` says; effects on a plain URL."""
    os.environ["ORCH_STORE_URL"] = effects_url
    os.environ["ORCH_KEY_PREFIX"] = key_prefix
    orchestra = Orchestra(
        effects_url, key_prefix, tmp_path, Redis.from_url(effects_url, decode_responses=True), extra_env=env
    )
    try:
        orchestra.worker(concurrency=2)
        run_id = orchestra.submit(
            {
                "workflow": "two-steps",
                "steps": {
                    "a": {"task": "t.effect", "args": {"name": "a"}},
                    "b": {"task": "t.effect", "needs": ["a"], "args": {"name": "b"}},
                },
            }
        )
        assert orchestra.wait(run_id).status is RunStatus.SUCCEEDED
        assert orchestra.effects() == {"a": 1, "b": 1}
        return orchestra
    finally:
        orchestra.close()
        os.environ.pop("ORCH_STORE_URL", None)
        os.environ.pop("ORCH_KEY_PREFIX", None)
