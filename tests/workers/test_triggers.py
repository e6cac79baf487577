"""Scheduled runs: once per tick even when beat sends the tick twice; overlap and catch-up policies."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis import Redis

from config import Settings
from orchestrator.definition.loader import load_text
from orchestrator.definition.models import Workflow
from orchestrator.engine.ports import RunQuery
from orchestrator.engine.records import EventKind, RunStatus, Trigger
from orchestrator.store import RedisRunStore
from orchestrator.triggers.schedules import START_RUN_TASK
from workers.app import create_app
from workers.beat import WorkflowScheduler
from workers.runtime import WorkerApp
from workers.schedules import fire

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def test_start_run_is_exactly_once_per_tick(
    redis_url: str, key_prefix: str, redis_client: Redis, tmp_path: Path
) -> None:
    (tmp_path / "every.yaml").write_text(
        "workflow: every\nschedule:\n  - every: 1h\n    params: {x: 1}\n"
        "params: {x: {type: integer}}\nsteps:\n  a: {task: demo.echo, args: {x: '${params.x}'}}\n"
    )
    settings = Settings(broker_url=redis_url, key_prefix=key_prefix, workflows_dir=tmp_path)
    app = create_app(settings)
    try:
        assert app.conf.beat_schedule == {}  # nothing is read when the app is built
        scheduler = WorkflowScheduler(app, schedule_filename=str(tmp_path / "beat-schedule"))
        assert "every/every 1h" in scheduler.schedule
        scheduler.close()
        start = app.tasks[START_RUN_TASK]
        first = start(workflow="every", schedule="every 1h", params={"x": 1})
        second = start(workflow="every", schedule="every 1h", params={"x": 1})  # a second beat, same tick
        old_beat = start(workflow="every", entry="every#0", params={"x": 1})  # a message of an older beat
        assert first == second == old_beat and len(first) == 1
        runs = RedisRunStore(redis_client, app.runtime.keys).runs.page(RunQuery()).runs
        assert [r.run_id for r in runs] == first
        assert runs[0].trigger.value == "schedule" and runs[0].params == {"x": 1}
        assert runs[0].started_by is not None and runs[0].started_by.startswith("schedule:every 1h@")
        state = app.runtime.store.schedules.state("every", "every 1h")
        assert state.started == 1 and state.last_run == first[0]
    finally:
        app.close()


@pytest.mark.parametrize("entry", ["every#0"])
def test_unknown_workflow_is_a_clear_error(redis_url: str, key_prefix: str, tmp_path: Path, entry: str) -> None:
    app = create_app(Settings(broker_url=redis_url, key_prefix=key_prefix, workflows_dir=tmp_path))
    try:
        with pytest.raises(Exception, match="no workflow 'gone'"):
            app.tasks[START_RUN_TASK](workflow="gone", entry=entry, params={})
    finally:
        app.close()


# --- overlap and catch-up, with a controlled "now" (no worker: runs stay pending, i.e. unfinished) ---


@pytest.fixture
def app(redis_url: str, key_prefix: str, tmp_path: Path) -> Iterator[WorkerApp]:
    built = create_app(Settings(broker_url=redis_url, key_prefix=key_prefix, workflows_dir=tmp_path))
    assert isinstance(built, WorkerApp)
    yield built
    built.close()


def hourly(policy: str) -> Workflow:
    return load_text(
        f"workflow: hourly\nschedule:\n  - name: h\n    cron: '0 * * * *'\n{policy}"
        "steps:\n  a: {task: demo.echo, args: {text: '${run.date}'}}\n",
        "hourly.yaml",
    )


def tick(app: WorkerApp, workflow: Workflow, now: datetime) -> list[str]:
    runtime = app.runtime
    return list(fire(runtime.coordinator, runtime.store.schedules, workflow, workflow.schedule[0], now).run_ids)


def test_overlap_skip_starts_nothing_while_the_previous_run_is_unfinished(app: WorkerApp) -> None:
    workflow = hourly("")  # skip is the default
    [first] = tick(app, workflow, T0 + timedelta(minutes=1))
    assert tick(app, workflow, T0 + timedelta(hours=1, minutes=1)) == []
    state = app.runtime.store.schedules.state("hourly", "h")
    assert state.skipped == 1 and state.last_skipped == "2026-03-01T11:00:00+00:00" and state.last_run == first
    assert tick(app, workflow, T0 + timedelta(hours=1, minutes=2)) == []  # the same tick again: still one skip
    assert app.runtime.store.schedules.state("hourly", "h").skipped == 1
    app.runtime.coordinator.cancel(first, "user:test")  # once it has ended, the next tick starts a run
    [third] = tick(app, workflow, T0 + timedelta(hours=2, minutes=1))
    assert third != first
    assert app.runtime.store.schedules.state("hourly", "h").started == 2


def test_overlap_allow_starts_a_run_every_tick(app: WorkerApp) -> None:
    workflow = hourly("    overlap: allow\n")
    [first] = tick(app, workflow, T0)
    [second] = tick(app, workflow, T0 + timedelta(hours=1))
    assert first != second
    statuses = {app.runtime.coordinator.get(r).status for r in (first, second)}
    assert statuses == {RunStatus.PENDING}


def test_overlap_cancel_previous_cancels_it_recording_the_tick_and_starts_the_next(app: WorkerApp) -> None:
    workflow = hourly("    overlap: cancel_previous\n")
    [first] = tick(app, workflow, T0)
    [second] = tick(app, workflow, T0 + timedelta(hours=1))
    coordinator = app.runtime.coordinator
    assert coordinator.get(first).status is RunStatus.CANCELLED
    assert coordinator.get(second).status is RunStatus.PENDING
    cancelled = [e for e in app.runtime.store.runs.history(first) if e.event is EventKind.CANCELLED]
    assert [e.by for e in cancelled] == ["schedule:h@2026-03-01T11:00:00+00:00"]


def test_catchup_off_starts_only_the_current_tick_after_beat_was_down(app: WorkerApp) -> None:
    workflow = hourly("    overlap: allow\n")
    tick(app, workflow, T0)
    started = tick(app, workflow, T0 + timedelta(hours=6, minutes=5))  # down from 10:00 to 16:05
    record = app.runtime.coordinator.get(started[0])
    assert len(started) == 1 and record.logical_date == "2026-03-01T16:00:00+00:00"
    assert app.runtime.store.schedules.state("hourly", "h").dropped == 5


def test_catchup_starts_at_most_the_limit_oldest_first_with_each_ticks_date(app: WorkerApp) -> None:
    workflow = hourly("    overlap: allow\n    catchup: true\n    catchup_limit: 3\n")
    tick(app, workflow, T0 - timedelta(days=1))  # the last tick: 2026-02-28 10:00
    started = tick(app, workflow, T0 + timedelta(minutes=30))  # 24 ticks missed up to 2026-03-01 10:00
    records = [app.runtime.coordinator.get(r) for r in started]
    assert [r.logical_date for r in records] == [
        "2026-03-01T08:00:00+00:00",
        "2026-03-01T09:00:00+00:00",
        "2026-03-01T10:00:00+00:00",
    ]
    assert all(r.trigger is Trigger.SCHEDULE for r in records)
    assert [r.started_by for r in records] == [f"schedule:h@{r.logical_date}" for r in records]
    state = app.runtime.store.schedules.state("hourly", "h")
    assert state.dropped == 21 and state.started == 4 and state.last_run == started[-1]
    assert tick(app, workflow, T0 + timedelta(minutes=40)) == started  # a second beat: the same runs
    assert app.runtime.store.schedules.state("hourly", "h").started == 4
