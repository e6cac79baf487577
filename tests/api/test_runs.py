"""Runs over real HTTP: submit, idempotency under a race, the long-poll, pagination and filters, who did what."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import httpx
import pytest

from tests.api.conftest import ApiServer

pytestmark = pytest.mark.integration


def submit(http: httpx.Client, workflow: str, params: dict[str, object] | None = None, **body: object) -> str:
    response = http.post(f"/v1/workflows/{workflow}/runs", json={"params": params or {}, **body})
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    assert isinstance(run_id, str)
    return run_id


def finished(http: httpx.Client, run_id: str, wait: str = "10s") -> dict[str, object]:
    deadline = time.monotonic() + 30
    while True:
        record = http.get(f"/v1/runs/{run_id}", params={"wait": wait}).json()
        if record["status"] in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
            return dict(record)


def held(http: httpx.Client, run_id: str, wait: str) -> tuple[dict[str, object], float]:
    """The record a long-poll answers, and how long it took."""
    started = time.monotonic()
    record = http.get(f"/v1/runs/{run_id}", params={"wait": wait}).json()
    return dict(record), time.monotonic() - started


def test_a_submitted_run_runs_and_its_record_says_the_api_and_the_token_started_it(api: ApiServer) -> None:
    workflow = api.workflow()
    with api.http("submit") as http:
        response = http.post(f"/v1/workflows/{workflow}/runs", json={"params": {"n": 4}})
        assert response.status_code == 202
        assert response.json()["created"] is True
        record = finished(http, response.json()["run_id"])
    assert record["status"] == "succeeded"
    assert record["workflow"] == workflow
    assert record["params"] == {"n": 4, "label": "x"}
    assert record["trigger"] == "api" and record["started_by"] == "token:svc"
    assert record["steps"]["only"]["output"] == 4  # type: ignore[index]


def test_one_idempotency_key_raced_by_eight_callers_makes_one_run(api: ApiServer) -> None:
    workflow = api.workflow()

    def call(_: int) -> httpx.Response:
        with api.http("submit") as http:
            return http.post(f"/v1/workflows/{workflow}/runs", json={"params": {}, "idempotency_key": "order-17"})

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(call, range(8)))
    assert sorted(a.status_code for a in answers) == [200] * 7 + [202]
    assert len({a.json()["run_id"] for a in answers}) == 1
    assert [a.json()["created"] for a in answers if a.status_code == 202] == [True]
    with api.http("read") as http:
        assert len(http.get("/v1/runs", params={"workflow": workflow}).json()["runs"]) == 1
    # The header works as the body's key, and a repeat by header answers 200 with the same run.
    with api.http("submit") as http:
        again = http.post(f"/v1/workflows/{workflow}/runs", json={}, headers={"Idempotency-Key": "order-17"})
    assert again.status_code == 200 and again.json()["run_id"] == answers[0].json()["run_id"]


def test_the_long_poll_answers_as_soon_as_the_run_ends(api: ApiServer) -> None:
    with api.http("admin") as http:
        record, took = held(http, submit(http, api.workflow("slow"), {"seconds": 1}), "9s")
    assert record["status"] == "succeeded"
    assert took < 7, f"held {took:.1f}s for a run of about 1s"


def test_the_long_poll_holds_for_the_whole_wait_while_the_run_goes_on(api: ApiServer) -> None:
    with api.http("admin") as http:
        run_id = submit(http, api.workflow("slow"), {"seconds": 30})
        record, took = held(http, run_id, "2s")
        http.post(f"/v1/runs/{run_id}/cancel")
    assert record["status"] in ("pending", "running")
    assert 1.9 <= took < 10, f"answered after {took:.2f}s for a wait of 2s"


def test_pages_of_ten_list_twenty_five_runs_newest_first_each_once(api: ApiServer) -> None:
    workflow, other = api.workflow(), api.workflow()
    with api.http("admin") as http:
        submitted = [submit(http, workflow, {"n": i + 1}) for i in range(25)]
        submit(http, other)
        pages, cursor = [], None
        while True:
            page = http.get("/v1/runs", params={"workflow": workflow, "limit": 10, "next": cursor}).json()
            pages.append(page["runs"])
            if (cursor := page["next"]) is None:
                break
    assert [len(p) for p in pages] in ([10, 10, 5], [10, 10, 5, 0])
    listed = [run["run_id"] for p in pages for run in p]
    assert sorted(listed) == sorted(submitted) and len(set(listed)) == 25
    created = [run["created_at"] for p in pages for run in p]
    assert created == sorted(created, reverse=True)
    assert listed == list(reversed(submitted))  # submitted one after another: newest first is reverse order


def test_runs_filter_by_workflow_status_trigger_and_since(api: ApiServer) -> None:
    good, bad = api.workflow(), api.workflow("failing")
    with api.http("admin") as http:
        good_ids = [submit(http, good) for _ in range(6)]
        bad_id = submit(http, bad)
        for run_id in [*good_ids, bad_id]:
            finished(http, run_id)

        def listed(**query: object) -> list[str]:
            answer = http.get("/v1/runs", params={"limit": 1000, **query})
            assert answer.status_code == 200, answer.text
            return [run["run_id"] for run in answer.json()["runs"]]

        assert sorted(listed(workflow=good)) == sorted(good_ids)
        assert listed(workflow=bad, status="failed") == [bad_id]
        assert listed(workflow=good, status="failed") == []
        assert sorted(listed(workflow=good, status="succeeded", trigger="api")) == sorted(good_ids)
        assert listed(workflow=good, trigger="schedule") == []
        records = sorted((http.get(f"/v1/runs/{r}").json() for r in good_ids), key=lambda r: r["created_at"])
        times = [datetime.fromisoformat(r["created_at"]) for r in records]
        middle = times[2] + (times[3] - times[2]) / 2
        assert sorted(listed(workflow=good, since=middle.isoformat())) == sorted(r["run_id"] for r in records[3:])
        assert sorted(listed(workflow=good, since="1h")) == sorted(good_ids)


def test_cancel_and_retry_by_the_api_are_in_the_history_with_the_token(api: ApiServer) -> None:
    with api.http("admin") as http:
        run_id = submit(http, api.workflow("slow"), {"seconds": 30})
        cancelled = http.post(f"/v1/runs/{run_id}/cancel")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        retried = http.post(f"/v1/runs/{run_id}/retry")
        assert retried.status_code == 200, retried.text
        http.post(f"/v1/runs/{run_id}/cancel")
        events = http.get(f"/v1/runs/{run_id}/events").json()["events"]
    submitted = [e for e in events if e["event"] == "submitted"]
    assert submitted and submitted[0]["by"] == "token:ops" and submitted[0]["trigger"] == "api"
    assert [e["by"] for e in events if e["event"] == "cancelled" and e.get("by")][:1] == ["token:ops"]
    assert [e["by"] for e in events if e["event"] == "retried"] == ["token:ops"]
    ids = [e["id"] for e in events]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
