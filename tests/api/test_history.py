"""The API with a durable history: it exports finished runs itself, and reads them back once Redis forgot them.

The server runs with ``ORCH_HISTORY_URL`` on the test run's history database; retention is
simulated by deleting a run's keys straight from Redis.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from redis import Redis

from orchestrator.errors import RunNotFound
from orchestrator.history.postgres import History
from orchestrator.store.keys import Keys
from tests.api.conftest import ApiServer, error_of

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(history_url: str, request: pytest.FixtureRequest) -> Iterator[ApiServer]:
    """The module's API server with the history configured (the ``api`` fixture reads ``API_ENV``)."""
    request.module.API_ENV = {"ORCH_HISTORY_URL": history_url, "ORCH_HISTORY__POLL_INTERVAL": "0.2"}
    yield request.getfixturevalue("api")


@pytest.fixture(scope="module")
def history(history_url: str) -> Iterator[History]:
    opened = History.open(history_url)
    yield opened
    opened.close()


def finished(http: httpx.Client, run_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while True:
        record = http.get(f"/v1/runs/{run_id}", params={"wait": "5s"}).json()
        if record["status"] in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
            return dict(record)


def exported(history: History, run_id: str) -> None:
    """Wait until the API's exporter has written the run (its run-ending script queued it)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            history.reader.get(run_id)
            return
        except RunNotFound:
            assert time.monotonic() < deadline, "the API's exporter did not write the run"
            time.sleep(0.1)


def forget(redis: Redis, keys: Keys, run_id: str, workflow: str) -> None:
    redis.delete(*redis.scan_iter(match=f"{keys.run(run_id)}*", count=1000))
    redis.zrem(keys.runs(), run_id)
    redis.zrem(keys.runs_of(workflow), run_id)


def test_the_api_reads_a_run_from_the_history_after_retention_removed_it(server: ApiServer, history: History) -> None:
    workflow, failing = server.workflow(), server.workflow("failing")
    redis, keys = server.orchestra.redis, Keys(server.orchestra.prefix)
    with server.http("submit") as http:
        run_ids = [http.post(f"/v1/workflows/{w}/runs", json={"params": {}}).json()["run_id"] for w in (workflow,) * 2]
        failed_id = http.post(f"/v1/workflows/{failing}/runs", json={"params": {}}).json()["run_id"]
        records = {run_id: finished(http, run_id) for run_id in [*run_ids, failed_id]}
        events = {run_id: http.get(f"/v1/runs/{run_id}/events").json() for run_id in records}
    for run_id in records:
        exported(history, run_id)
    forget(redis, keys, run_ids[0], workflow)
    forget(redis, keys, failed_id, failing)
    with server.http("read") as http:
        for run_id in (run_ids[0], failed_id):
            assert http.get(f"/v1/runs/{run_id}").json() == records[run_id]
            assert http.get(f"/v1/runs/{run_id}", params={"wait": "5s"}).json() == records[run_id]  # ended: at once
            assert http.get(f"/v1/runs/{run_id}/events").json() == events[run_id]
        listed = http.get("/v1/runs", params={"workflow": workflow}).json()
        assert [r["run_id"] for r in listed["runs"]] == run_ids[::-1] and listed["next"] is None
        page = http.get("/v1/runs", params={"workflow": workflow, "limit": 1}).json()
        assert [r["run_id"] for r in page["runs"]] == [run_ids[1]]
        page = http.get("/v1/runs", params={"workflow": workflow, "limit": 1, "next": page["next"]}).json()
        assert [r["run_id"] for r in page["runs"]] == [run_ids[0]]  # the history's, after Redis's
        failed = http.get("/v1/runs", params={"workflow": failing, "status": "failed", "actor": "token:svc"}).json()
        assert [r["run_id"] for r in failed["runs"]] == [failed_id]
        assert failed["runs"][0]["status"] == "failed"
        later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
        assert http.get("/v1/runs", params={"workflow": workflow, "since": later}).json()["runs"] == []
        until = http.get("/v1/runs", params={"workflow": workflow, "until": later, "actor": "token:svc"}).json()
        assert len(until["runs"]) == 2
        assert http.get("/v1/runs", params={"workflow": workflow, "actor": "token:ops"}).json()["runs"] == []
        missing = http.get(f"/v1/runs/{uuid.uuid4().hex}")
        assert missing.status_code == 404 and error_of(missing)["type"] == "RunNotFound"
        bad = http.get("/v1/runs", params={"until": "yesterday-ish"})
        assert bad.status_code == 422 and error_of(bad)["field"] == "until"
