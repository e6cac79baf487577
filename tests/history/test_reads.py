"""Reads across both stores: a run retention removed from Redis comes from the history; lists merge both.

Retention is simulated by deleting a run's keys (and its index entries) straight from Redis.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from redis import Redis
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.engine.ports import RunQuery
from orchestrator.engine.records import RunStatus, RunSummary, Trigger
from orchestrator.errors import InvalidArgument, RunNotFound
from orchestrator.history import Exporter, RunCatalog
from orchestrator.history.postgres import History
from orchestrator.store import RedisRunStore
from tests.history.factory import chain, finished_run


def forget(store: RedisRunStore, run_id: str, workflow: str) -> None:
    """What retention does to a run: every key of it gone, and its index entries."""
    keys = list(store.redis.scan_iter(match=f"{store.keys.run(run_id)}*", count=1000))
    store.redis.delete(*keys)
    store.redis.zrem(store.keys.runs(), run_id)
    store.redis.zrem(store.keys.runs_of(workflow), run_id)


def catalog(store: RedisRunStore, history: History) -> RunCatalog:
    return RunCatalog(store.runs, store.archive, history.reader)


def every_page(runs: RunCatalog, query: RunQuery) -> tuple[list[RunSummary], int]:
    """Every run the pages of ``query`` show, following ``next``; and how many pages it took."""
    found: list[RunSummary] = []
    pages = 0
    cursor = None
    while True:
        page = runs.page(RunQuery(**{**query.__dict__, "after": cursor}))
        pages += 1
        found += page.runs
        cursor = page.next
        if cursor is None:
            return found, pages
        assert pages < 100


def test_a_run_retention_removed_is_read_from_the_history(
    store: RedisRunStore, history: History, exporter: Exporter
) -> None:
    workflow = f"gone-{uuid.uuid4().hex[:6]}"
    run_id = finished_run(store, chain(workflow), fail=True, retries=1)
    hot_record, hot_events = store.runs.get(run_id), store.runs.history(run_id)
    exporter.drain()
    forget(store, run_id, workflow)
    with pytest.raises(RunNotFound):
        store.runs.get(run_id)
    runs = catalog(store, history)
    assert runs.get(run_id) == hot_record
    assert runs.events(run_id) == hot_events
    assert runs.status(run_id) is RunStatus.FAILED
    with pytest.raises(RunNotFound):
        runs.get(uuid.uuid4().hex)
    with pytest.raises(RunNotFound):
        runs.events(uuid.uuid4().hex)


def test_a_list_pages_through_both_stores_newest_first_with_one_cursor(
    store: RedisRunStore, history: History, exporter: Exporter
) -> None:
    workflow = f"merge-{uuid.uuid4().hex[:6]}"
    plan = chain(workflow)
    run_ids = [finished_run(store, plan, fail=i % 3 == 0) for i in range(13)]
    exporter.drain()
    for run_id in run_ids[::2]:  # the older half and more, gone from Redis: only the history has them
        forget(store, run_id, workflow)
    store.redis.hset(store.keys.run(run_ids[1]), "status", "running")  # retried since: Redis's answer stands
    runs = catalog(store, history)
    newest_first = list(reversed(run_ids))
    for limit in (1, 3, 5, 13, 50):
        found, _ = every_page(runs, RunQuery(workflow=workflow, limit=limit))
        assert [r.run_id for r in found] == newest_first, limit
        assert next(r for r in found if r.run_id == run_ids[1]).status is RunStatus.RUNNING
    failed, _ = every_page(runs, RunQuery(workflow=workflow, status=RunStatus.FAILED, limit=2))
    assert [r.run_id for r in failed] == [r for r in newest_first if run_ids.index(r) % 3 == 0 and r != run_ids[1]]


def test_history_lists_filter_by_workflow_status_trigger_actor_and_time(
    store: RedisRunStore, history: History, exporter: Exporter
) -> None:
    tag = uuid.uuid4().hex[:6]
    made: dict[str, dict[str, object]] = {}
    for i in range(12):
        workflow = f"filter-{tag}-{i % 2}"
        trigger = [Trigger.API, Trigger.SCHEDULE, Trigger.WEBHOOK][i % 3]
        actor = f"token:svc-{tag}" if i % 4 == 0 else f"user:ana-{tag}"
        run_id = finished_run(store, chain(workflow), trigger=trigger, started_by=actor, fail=i % 5 == 0)
        made[run_id] = {"workflow": workflow, "trigger": trigger, "actor": actor, "failed": i % 5 == 0}
    exporter.drain()
    for run_id, facts in made.items():
        forget(store, run_id, str(facts["workflow"]))
    reader = history.reader
    newest = list(reversed(made))

    def ids(**filters: object) -> list[str]:
        found = []
        cursor = None
        while True:
            page = reader.listed(RunQuery(limit=2, after=cursor, **filters))  # type: ignore[arg-type]
            found += [entry.run.run_id for entry in page]
            if len(page) < 2:
                return found
            cursor = page[-1].key.cursor()

    assert ids(workflow=f"filter-{tag}-1") == [r for r in newest if made[r]["workflow"] == f"filter-{tag}-1"]
    assert ids(workflow=f"filter-{tag}-0", status=RunStatus.FAILED) == [
        r for r in newest if made[r]["workflow"] == f"filter-{tag}-0" and made[r]["failed"]
    ]
    assert ids(trigger=Trigger.WEBHOOK, actor=f"user:ana-{tag}") == [
        r for r in newest if made[r]["trigger"] is Trigger.WEBHOOK and made[r]["actor"] == f"user:ana-{tag}"
    ]
    assert ids(actor=f"token:svc-{tag}") == [r for r in newest if made[r]["actor"] == f"token:svc-{tag}"]
    keys = [entry.key for entry in reader.listed(RunQuery(actor=f"user:ana-{tag}", limit=100))]
    middle = keys[len(keys) // 2].score
    assert ids(actor=f"user:ana-{tag}", since=middle) == [k.run_id for k in keys if k.score >= middle]
    assert ids(actor=f"user:ana-{tag}", until=middle) == [k.run_id for k in keys if k.score < middle]
    with pytest.raises(InvalidArgument, match="not a cursor"):
        reader.listed(RunQuery(after="nonsense"))


def test_status_and_runs_on_the_command_line_read_the_history(
    cli: CliRunner, store: RedisRunStore, history: History, exporter: Exporter, redis_client: Redis
) -> None:
    workflow = f"cli-{uuid.uuid4().hex[:6]}"
    run_ids = [finished_run(store, chain(workflow), started_by="user:ana") for _ in range(3)]
    expected = store.runs.get(run_ids[0]).model_dump(mode="json")
    exporter.drain()
    for run_id in run_ids[:2]:
        forget(store, run_id, workflow)
    result = cli.invoke(app, ["status", run_ids[0], "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == expected
    result = cli.invoke(app, ["runs", "--workflow", workflow, "--actor", "user:ana", "--json", "--limit", "2"])
    assert result.exit_code == 0, result.output
    assert [r["run_id"] for r in json.loads(result.stdout)] == run_ids[:0:-1]
    cursor = result.stderr.strip().rsplit(" ", 1)[-1]
    result = cli.invoke(app, ["runs", "--workflow", workflow, "--json", "--after", cursor])
    assert [r["run_id"] for r in json.loads(result.stdout)] == run_ids[:1]
    later = datetime.now(UTC).isoformat()
    result = cli.invoke(app, ["runs", "--workflow", workflow, "--json", "--since", later])
    assert json.loads(result.stdout) == []
    result = cli.invoke(app, ["runs", "--workflow", workflow, "--json", "--until", later, "--actor", "user:bob"])
    assert json.loads(result.stdout) == []
    result = cli.invoke(app, ["history", "status", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["revision"] == json.loads(result.stdout)["needed"]


def test_while_the_history_is_down_lists_show_redis_and_a_removed_run_says_so(
    store: RedisRunStore, caplog: pytest.LogCaptureFixture
) -> None:
    from orchestrator.errors import ServiceUnavailable

    workflow = f"down-{uuid.uuid4().hex[:6]}"
    run_id = finished_run(store, chain(workflow))
    down = History.open("postgresql://postgres@127.0.0.1:1/history")
    try:
        runs = RunCatalog(store.runs, store.archive, down.reader)
        assert [r.run_id for r in runs.page(RunQuery(workflow=workflow)).runs] == [run_id]
        assert "listing runs from Redis alone: cannot reach the history database" in caplog.text
        assert runs.get(run_id).run_id == run_id  # Redis has it: the history is not asked
        with pytest.raises(ServiceUnavailable, match="at 127.0.0.1:1/history: connection refused"):
            runs.get(uuid.uuid4().hex)
    finally:
        down.close()


def test_the_hot_store_filters_by_actor_and_until_too(store: RedisRunStore) -> None:
    workflow = f"hot-{uuid.uuid4().hex[:6]}"
    plan = chain(workflow)
    first = finished_run(store, plan, started_by="user:ana")
    middle = float(store.redis.zscore(store.keys.runs(), first) or 0) + 1e-6
    second = finished_run(store, plan, started_by="token:svc")
    third = finished_run(store, plan, started_by="user:ana")
    page = store.runs.page
    assert [r.run_id for r in page(RunQuery(workflow=workflow, actor="user:ana")).runs] == [third, first]
    assert [r.run_id for r in page(RunQuery(workflow=workflow, until=middle)).runs] == [first]
    assert [r.run_id for r in page(RunQuery(workflow=workflow, since=middle)).runs] == [third, second]
    one = page(RunQuery(workflow=workflow, limit=1, actor="user:ana"))
    assert [r.run_id for r in one.runs] == [third] and one.next is not None
    rest = page(RunQuery(workflow=workflow, limit=5, actor="user:ana", after=one.next, until=middle + 3600))
    assert [r.run_id for r in rest.runs] == [first]
