"""The exporter: each finished run written once, whatever is repeated, retried, refused or gone."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestrator.engine.coordinator import Coordinator
from orchestrator.engine.ports import ArchivedRun, NewRun
from orchestrator.engine.records import EventKind, RunStatus
from orchestrator.history import Exporter
from orchestrator.history.models import AttemptRow, EventRow, RunRow
from orchestrator.history.postgres import History
from orchestrator.plan.policy import base_policy
from orchestrator.store import RedisRunStore
from tests.history.factory import chain, finished_run, retried


def counts(history: History, run_ids: Sequence[str]) -> dict[str, int]:
    """Rows per table for these runs."""
    with Session(history.engine) as session:
        return {
            model.__tablename__: session.scalar(
                select(func.count()).select_from(model).where(model.run_id.in_(run_ids))
            )
            or 0
            for model in (RunRow, EventRow, AttemptRow)
        }


def test_an_exported_run_reads_back_as_the_hot_store_has_it(
    store: RedisRunStore, history: History, exporter: Exporter
) -> None:
    run_id = finished_run(store, chain(steps=3), fail=True, retries=2, params={"source": "feed", "n": [1, 2]})
    batch = exporter.drain()
    assert (batch.read, batch.written) == (1, 1)
    assert history.reader.get(run_id) == store.runs.get(run_id)  # outputs, errors (a NUL in one), times to the µs
    assert history.reader.history(run_id) == store.runs.history(run_id)
    events = store.runs.history(run_id)
    assert history.reader.history(run_id, events[3].id, 2) == events[4:6]
    with Session(history.engine) as session:
        attempts = session.scalars(
            select(AttemptRow).where(AttemptRow.run_id == run_id).order_by(AttemptRow.step, AttemptRow.number)
        ).all()
    assert [(a.step, a.attempt, a.outcome) for a in attempts] == [
        ("s0", 1, "succeeded"),
        ("s1", 1, "succeeded"),
        ("s2", 1, "retrying"),
        ("s2", 2, "retrying"),
        ("s2", 3, "failed"),
    ]
    assert attempts[-1].error == {"type": "ValueError", "message": "bad input \u0000 in the feed"}
    assert all(a.worker == "w1@test" and a.started_at and a.ended_at for a in attempts)
    assert store.archive.size() == 0


def test_a_run_marked_for_the_history_joins_the_queue_when_it_ends_and_only_then(store: RedisRunStore) -> None:
    plan = chain()
    marked = finished_run(store, plan, queue=False)
    unmarked = finished_run(store, plan, queue=False, archive=False)
    [(queued, ended)] = store.archive.pending(10)
    assert queued == marked and abs(ended - time.time()) < 60
    assert store.redis.hget(store.keys.run(marked), "archive") == "1"
    assert store.redis.hget(store.keys.run(unmarked), "archive") is None


def test_exporting_again_after_a_crash_before_the_dequeue_writes_nothing_twice(
    store: RedisRunStore, history: History, exporter: Exporter
) -> None:
    plan = chain()
    run_ids = [finished_run(store, plan) for _ in range(7)]
    queued = store.archive.pending(100)
    assert exporter.drain().written == 7
    before = counts(history, run_ids)
    store.redis.zadd(store.keys.archiving(), dict(queued))  # as if the exporter died after its commit
    again = exporter.drain()
    assert (again.read, again.written) == (7, 0)
    assert counts(history, run_ids) == before == {"runs": 7, "events": 7 * 8, "attempts": 7 * 2}
    assert store.archive.size() == 0


def test_a_retried_run_replaces_its_earlier_record(store: RedisRunStore, history: History, exporter: Exporter) -> None:
    plan = chain()
    run_id = finished_run(store, plan, fail=True)
    exporter.drain()
    assert history.reader.get(run_id).status is RunStatus.FAILED
    retried(store, plan, run_id)
    assert exporter.drain().written == 1
    record = history.reader.get(run_id)
    assert record == store.runs.get(run_id)
    assert record.status is RunStatus.SUCCEEDED and record.steps["s1"].output == "again"
    assert [e.event for e in history.reader.history(run_id)].count(EventKind.RETRIED) == 1
    assert counts(history, [run_id])["runs"] == 1


def test_a_run_that_ended_again_after_it_was_read_stays_queued(store: RedisRunStore) -> None:
    run_id = finished_run(store, chain())
    read = store.archive.pending(10)
    store.redis.zadd(store.keys.archiving(), {run_id: time.time() + 1})  # retried and ended again meanwhile
    assert store.archive.done(read) == 0
    assert [r for r, _ in store.archive.pending(10)] == [run_id]
    assert store.archive.done(store.archive.pending(10)) == 1


def test_runs_gone_from_redis_or_running_again_leave_the_queue_unwritten(
    store: RedisRunStore, history: History, exporter: Exporter
) -> None:
    plan = chain()
    gone, running, fine = (finished_run(store, plan) for _ in range(3))
    store.redis.delete(store.keys.run(gone))
    store.redis.hset(store.keys.run(running), "status", "running")  # retried since it ended
    batch = exporter.drain()
    assert (batch.read, batch.written, batch.gone, batch.unfinished) == (3, 1, 1, 1)
    assert counts(history, [gone, running, fine])["runs"] == 1
    assert store.archive.size() == 0


class Refusing:
    """A writer whose database refuses one run (as PostgreSQL would a value it cannot store)."""

    def __init__(self, writer: Any, refused: str) -> None:
        self.writer = writer
        self.refused = refused

    def write(self, runs: Sequence[ArchivedRun]) -> int:
        if any(r.record.run_id == self.refused for r in runs):
            raise ValueError("a value the database cannot store")
        return int(self.writer.write(runs))


def test_a_run_the_history_refuses_waits_at_the_back_of_the_queue_and_the_rest_go_on(
    store: RedisRunStore, history: History, caplog: pytest.LogCaptureFixture
) -> None:
    plan = chain()
    run_ids = [finished_run(store, plan) for _ in range(4)]
    exporter = Exporter(store.archive, Refusing(history.writer, run_ids[1]), batch_size=10)
    batch = exporter.drain()
    assert (batch.written, batch.deferred) == (3, 1)
    assert counts(history, run_ids)["runs"] == 3
    [(left, score)] = store.archive.pending(10)
    assert left == run_ids[1] and score > time.time() + 60
    assert f"the history refused run {run_ids[1]}" in caplog.text


def test_one_exporter_works_at_a_time(store: RedisRunStore, history: History) -> None:
    finished_run(store, chain())
    first = Exporter(store.archive, history.writer, owner="first")
    second = Exporter(store.archive, history.writer, owner="second")
    assert store.archive.hold("first", 30)
    assert second.drain().read == 0 and store.archive.size() == 1
    assert first.drain().written == 1
    store.archive.release("first")
    assert store.archive.holder() is None and store.archive.hold("second", 30)


class Recording:
    """A run store that records what is created (the coordinator's side of the contract)."""

    def __init__(self) -> None:
        self.created: list[NewRun] = []
        self.runs = self
        self.steps = self
        self.side_effects = self
        self.leases = self

    def create(self, run: NewRun, idempotency_key: str | None = None, outbound: object = None) -> tuple[str, bool]:
        self.created.append(run)
        return run.run_id, False


@pytest.mark.parametrize("archive", [True, False])
def test_the_coordinator_marks_its_runs_for_the_history_when_one_is_configured(archive: bool) -> None:
    from orchestrator.definition.loader import build_workflow

    class Dispatcher:
        def outbound(self, deliveries: object) -> None:
            return None

    store = Recording()
    coordinator = Coordinator(store, Dispatcher(), base_policy=base_policy(), lease_seconds=15, archive=archive)  # type: ignore[arg-type]
    coordinator.submit(build_workflow({"workflow": "w", "steps": {"a": {"task": "t"}}}))
    assert [run.archive for run in store.created] == [archive]
