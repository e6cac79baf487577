"""Schedules: ticks in the entry's time zone, beat entries, due-ness."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from orchestrator.definition.loader import load_file
from orchestrator.definition.models import Schedule
from orchestrator.triggers.schedules import START_RUN_TASK, CronSchedule, beat_entries, current_tick


def test_cron_tick_is_taken_in_the_entry_time_zone() -> None:
    spec = Schedule(cron="15 2 * * *", timezone="Europe/Paris")
    # 2026-07-01 00:20 UTC is 02:20 in Paris (summer time): the 02:15 Paris tick has passed.
    tick = current_tick(spec, datetime(2026, 7, 1, 0, 20, tzinfo=UTC), "e")
    assert tick.at == datetime(2026, 7, 1, 2, 15, tzinfo=ZoneInfo("Europe/Paris"))
    # In winter the same instant is 01:20 in Paris: the latest tick is the day before.
    winter = current_tick(spec, datetime(2026, 1, 15, 0, 20, tzinfo=UTC), "e")
    assert winter.at.date().isoformat() == "2026-01-14"


def test_exact_tick_counts_as_that_tick() -> None:
    spec = Schedule(cron="0 * * * *")
    now = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)
    assert current_tick(spec, now, "e").at == now
    assert current_tick(spec, now - timedelta(seconds=1), "e").at == now - timedelta(hours=1)


def test_interval_ticks() -> None:
    spec = Schedule(every=60.0)
    tick = current_tick(spec, datetime(2026, 3, 1, 10, 0, 42, tzinfo=UTC), "e")
    assert tick.at == datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)


def test_due_once_per_tick() -> None:
    schedule = CronSchedule(Schedule(cron="* * * * *"), "e")
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    due, wait = schedule.is_due(long_ago)
    assert due and 0 < wait <= 60
    due, _ = schedule.is_due(datetime.now(UTC))
    assert not due


def test_beat_entries_from_a_workflow() -> None:
    workflow = load_file("examples/nightly-batch.yaml")
    entries = beat_entries({workflow.workflow: workflow})
    assert set(entries) == {"nightly-batch#0", "nightly-batch#1"}
    entry = entries["nightly-batch#1"]
    assert entry["task"] == START_RUN_TASK
    assert entry["kwargs"] == {
        "workflow": "nightly-batch",
        "entry": "nightly-batch#1",
        "params": {"date": "yesterday", "dry_run": True},
    }
