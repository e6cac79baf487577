"""Metrics as Prometheus scrapes them: a real prefork worker node's ``--metrics-port``, and the API's ``/metrics``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from config import Settings
from orchestrator.api.app import create_api
from orchestrator.engine.records import RunStatus
from orchestrator.triggers.schedules import START_RUN_TASK
from tests.integration.conftest import Orchestra
from tests.observability.conftest import free_port, scrape, value, wait_for

pytestmark = pytest.mark.integration

RETRIED = {
    "workflow": "metered",
    "steps": {
        "flaky": {
            "task": "t.flaky",
            "args": {"name": "${run.id}", "failures": 1},
            "retry": {"max_attempts": 3, "delay": "100ms", "jitter": False, "on": ["ConnectionError"]},
        },
        "after": {"task": "t.effect", "needs": ["flaky"], "args": {"name": "after", "sleep": 1.0}},
    },
}
SCHEDULED = {
    "workflow": "nightly",
    "schedule": [{"name": "every-minute", "cron": "* * * * *"}],
    "steps": {"only": {"task": "t.effect", "args": {"name": "scheduled"}}},
}


def test_prefork_worker_serves_the_whole_nodes_metrics(orchestra: Orchestra, tmp_path: Path) -> None:
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    (workflows / "nightly.json").write_text(json.dumps(SCHEDULED))
    directory = tmp_path / "prom"
    directory.mkdir()
    (directory / "counter_99999.db").write_bytes(b"stale")  # a previous run of the node: cleared at start
    orchestra.extra_env.update(ORCH_WORKFLOWS_DIR=str(workflows), ORCH_METRICS__MULTIPROCESS_DIR=str(directory))
    port = free_port()
    worker = orchestra.worker("--metrics-port", str(port), concurrency=2)
    url = f"http://127.0.0.1:{port}/metrics"
    assert not (directory / "counter_99999.db").exists()

    before = scrape(url)
    assert value(before, "orchestrator_backlog_up") == 1
    assert ("orchestrator_queue_depth", frozenset({("queue", "default")})) in before

    run_id = orchestra.submit(RETRIED)
    wait_for("the retried attempt", lambda: value(scrape(url), "orchestrator_step_retries_total", step="flaky") == 1)
    during = scrape(url)  # `after` is running (it sleeps a second)
    assert value(during, "orchestrator_runs_finished_total", workflow="metered") == 0
    assert value(during, "orchestrator_step_duration_seconds_count", step="flaky", status="retrying") == 1
    assert ("orchestrator_queue_depth", frozenset({("queue", "default")})) in during

    assert orchestra.wait(run_id).status is RunStatus.SUCCEEDED
    orchestra.app.send_task(START_RUN_TASK, kwargs={"workflow": "nightly", "schedule": "every-minute"})
    wait_for("the scheduled run", lambda: orchestra.effects().get("scheduled") == 1)

    after = scrape(url)
    assert value(after, "orchestrator_runs_finished_total", workflow="metered", status="succeeded") == 1
    assert value(after, "orchestrator_runs_started_total", workflow="nightly", trigger="schedule") == 1
    assert value(after, "orchestrator_schedule_ticks_total", workflow="nightly", outcome="started") == 1
    assert value(after, "orchestrator_step_retries_total", workflow="metered", step="flaky") == 1
    assert value(after, "orchestrator_step_duration_seconds_count", workflow="metered", status="succeeded") == 2
    assert value(after, "orchestrator_step_duration_seconds_sum", step="after") >= 1.0
    # every start of the metered run (3: flaky twice, after once) measured its lag from its message
    assert value(after, "orchestrator_dispatch_lag_seconds_count", workflow="metered") == 3
    assert value(after, "orchestrator_queue_depth", queue="default") == 0
    assert value(after, "orchestrator_store_keys") > 0
    # the steps ran in the pool processes, each writing its own files, which the main process summed
    children = set(worker.children())
    writers = {int(p.stem.rsplit("_", 1)[1]) for p in directory.glob("*.db")}
    assert writers & children, (writers, children)
    assert os.getpid() not in writers


def test_api_metrics_count_runs_submitted_over_the_api(
    orchestra: Orchestra, tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    (tmp_path / "quick.json").write_text(
        json.dumps({"workflow": "quick-metrics", "steps": {"only": {"task": "t.effect", "args": {"name": "q"}}}})
    )
    settings = Settings(
        broker_url=redis_url,
        store_url=redis_url,
        key_prefix=key_prefix,
        workflows_dir=tmp_path,
        task_modules=["tests.integration.tasks"],
        api_tokens="svc:metrics-test-token",
    )
    before, after = anyio.run(_submit_twice, settings)
    started = ("orchestrator_runs_started_total", frozenset({("workflow", "quick-metrics"), ("trigger", "api")}))
    assert after[started] - before.get(started, 0) == 2
    # no worker runs here: both messages wait in the default queue, read from Redis at scrape time
    assert value(after, "orchestrator_queue_depth", queue="default") == 2
    assert value(after, "orchestrator_backlog_up") == 1
    assert value(after, "orchestrator_api_requests_total", route="/v1/workflows/{name}/runs", status="202") >= 2


async def _submit_twice(settings: Settings) -> tuple[dict[tuple[str, frozenset[tuple[str, str]]], float], ...]:
    """/metrics before and after two submissions, on the API app with its lifespan (store, collector) running."""
    api = create_api(settings)
    async with (
        api.router.lifespan_context(api),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=api), base_url="http://api") as client,
    ):
        before = _samples((await client.get("/metrics")).text)
        for _ in range(2):
            response = await client.post(
                "/v1/workflows/quick-metrics/runs",
                json={"params": {}},
                headers={"Authorization": "Bearer metrics-test-token"},
            )
            assert response.status_code == 202, response.text
        after = _samples((await client.get("/metrics")).text)
    return before, after


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
