"""Flower as operators use it: ``orchestrator flower`` behind basic auth, steps under their real task names."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.engine.records import RunStatus
from tests.integration.conftest import ROOT, Orchestra
from tests.observability.conftest import free_port, wait_for

pytestmark = pytest.mark.integration

USER, PASSWORD = "ops", "flower-test-password"
WORKFLOW = {
    "workflow": "watched",
    "steps": {
        "fetch": {"task": "t.effect", "args": {"name": "fetch", "value": "secret-param-value"}},
        "square": {"task": "t.square", "needs": ["fetch"], "args": {"x": 7}},
    },
}


@pytest.fixture
def flower(orchestra: Orchestra, tmp_path: Path) -> Iterator[str]:
    """``orchestrator flower`` on a free port; stopped by pid (SIGTERM, then SIGKILL) at the end."""
    port = free_port()
    env = orchestra.env()
    env.update(
        ORCH_FLOWER_BASIC_AUTH=f"{USER}:{PASSWORD}",
        ORCH_FLOWER__PORT=str(port),
        ORCH_FLOWER__DB=str(tmp_path / "flower.db"),
        ORCH_FLOWER__MAX_TASKS="1000",
    )
    log = tmp_path / "flower.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "flower"], cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"flower on {url}:\n{log.read_text()}", lambda: _answers(f"{url}/healthcheck", process))
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _answers(url: str, process: subprocess.Popen[bytes]) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"flower exited with {process.returncode}")
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_flower_lists_steps_under_their_task_names_behind_basic_auth(orchestra: Orchestra, flower: str) -> None:
    for path in ("/", "/api/tasks"):
        assert httpx.get(f"{flower}{path}", timeout=5).status_code == 401, path
    assert httpx.get(f"{flower}/api/tasks", auth=(USER, "wrong"), timeout=5).status_code == 401
    orchestra.worker("-E")
    run_id = orchestra.submit(WORKFLOW)
    assert orchestra.wait(run_id).status is RunStatus.SUCCEEDED

    def tasks() -> dict[str, Any]:
        response = httpx.get(f"{flower}/api/tasks", auth=(USER, PASSWORD), timeout=5)
        assert response.status_code == 200
        found: dict[str, Any] = response.json()
        return found

    wait_for("both steps in flower", lambda: {t.get("name") for t in tasks().values()} >= {"t.effect", "t.square"})
    shown = {t["name"]: t for t in tasks().values() if t.get("state") == "SUCCESS"}
    assert set(shown) >= {"t.effect", "t.square"}, shown
    fetch = shown["t.effect"]
    assert run_id in fetch["kwargs"] and "'step': 'fetch'" in fetch["kwargs"] and "'attempt': 1" in fetch["kwargs"]
    assert fetch["args"] == "()"
    for task in shown.values():  # only run, step, item and attempt: no params, plan or stamps
        assert "secret-param-value" not in task["kwargs"] + task["args"]
        assert "plan_id" not in task["kwargs"] and "due" not in task["kwargs"]
    assert httpx.get(f"{flower}/healthcheck", timeout=5).status_code == 200  # unauthenticated by Flower
    started = time.monotonic()
    metrics = httpx.get(f"{flower}/metrics", timeout=5)
    assert metrics.status_code == 200 and "flower_events_total" in metrics.text, time.monotonic() - started
