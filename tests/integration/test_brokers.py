"""RabbitMQ as the broker (run state still in Redis), and the embedded default end to end."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.runs import RunStatus
from tests.integration.conftest import ROOT, Orchestra

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
