"""Schedules: ticks in the entry's time zone, beat entries, due-ness."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from orchestrator.definition.loader import load_file
from orchestrator.definition.models import Schedule
from orchestrator.triggers.schedules import (
    START_RUN_TASK,
    CronSchedule,
    beat_entries,
    count_between,
    current_tick,
    due_ticks,
    recent_ticks,
    submission_key,
    ticks_between,
)


def test_cron_tick_is_taken_in_the_entry_time_zone() -> None:
    spec = Schedule(cron="15 2 * * *", timezone="Europe/Paris")
    # 2026-07-01 00:20 UTC is 02:20 in Paris (summer time): the 02:15 Paris tick has passed.
    tick = current_tick(spec, datetime(2026, 7, 1, 0, 20, tzinfo=UTC))
    assert tick == datetime(2026, 7, 1, 2, 15, tzinfo=ZoneInfo("Europe/Paris"))
    # In winter the same instant is 01:20 in Paris: the latest tick is the day before.
    winter = current_tick(spec, datetime(2026, 1, 15, 0, 20, tzinfo=UTC))
    assert winter.date().isoformat() == "2026-01-14"


def test_exact_tick_counts_as_that_tick() -> None:
    spec = Schedule(cron="0 * * * *")
    now = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)
    assert current_tick(spec, now) == now
    assert current_tick(spec, now - timedelta(seconds=1)) == now - timedelta(hours=1)


def test_interval_ticks() -> None:
    spec = Schedule(every=60.0)
    tick = current_tick(spec, datetime(2026, 3, 1, 10, 0, 42, tzinfo=UTC))
    assert tick == datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)


def test_due_once_per_tick() -> None:
    schedule = CronSchedule(Schedule(cron="* * * * *"), "e")
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    due, wait = schedule.is_due(long_ago)
    assert due and 0 < wait <= 60
    if (now := datetime.now(UTC)).second >= 58:  # a minute's tick between the two reads of the clock would be due
        time.sleep(60.5 - now.second - now.microsecond / 1e6)
    due, _ = schedule.is_due(datetime.now(UTC))
    assert not due


def test_beat_entries_from_a_workflow() -> None:
    workflow = load_file("examples/nightly-batch.yaml")
    entries = beat_entries({workflow.workflow: workflow})
    assert set(entries) == {"nightly-batch/15 2 * * *", "nightly-batch/0 6 * * 1"}
    entry = entries["nightly-batch/0 6 * * 1"]
    assert entry["task"] == START_RUN_TASK
    assert entry["kwargs"] == {
        "workflow": "nightly-batch",
        "schedule": "0 6 * * 1",
        "params": {"date": "yesterday", "dry_run": True},
    }


def test_default_names_are_the_cron_or_the_interval() -> None:
    assert Schedule(cron="0 1 * * *").effective_name == "0 1 * * *"
    assert Schedule(every=3600.0).effective_name == "every 1h"
    assert Schedule(name="nightly", cron="0 1 * * *").effective_name == "nightly"


def test_ticks_between_includes_both_ends_in_the_entry_time_zone() -> None:
    spec = Schedule(cron="0 1 * * *", timezone="Europe/Berlin")
    start = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)  # 01:00 Berlin: a tick
    ticks = ticks_between(spec, start, start + timedelta(days=2))
    assert [t.isoformat() for t in ticks] == [
        "2026-03-01T01:00:00+01:00",
        "2026-03-02T01:00:00+01:00",
        "2026-03-03T01:00:00+01:00",
    ]
    assert len(ticks_between(spec, start, start + timedelta(days=30), limit=5)) == 5
    assert ticks_between(spec, start, start - timedelta(seconds=1)) == []


def test_a_tick_names_its_submission_in_the_entry_time_zone() -> None:
    at = datetime(2026, 3, 1, 1, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert submission_key("nightly", at) == "schedule:nightly:2026-03-01T01:00:00+01:00"


CRONS = st.sampled_from(["*/7 * * * *", "0 * * * *", "15 2 * * *", "0 6 * * 1", "30 */5 * * *"])
MOMENTS = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC))


@given(cron=CRONS, start=MOMENTS, hours=st.integers(0, 72), count=st.integers(1, 20))
def test_recent_ticks_are_the_last_of_ticks_between(cron: str, start: datetime, hours: int, count: int) -> None:
    spec = Schedule(cron=cron, timezone="Europe/Paris")
    end = start + timedelta(hours=hours)
    every_tick = ticks_between(spec, start + timedelta(microseconds=1), end)
    assert every_tick == sorted(every_tick) and all(start < t <= end for t in every_tick)
    assert recent_ticks(spec, start, end, count) == every_tick[-count:]
    assert count_between(spec, start, end) == len([t for t in every_tick if t < end])


@given(every=st.sampled_from([1.0, 1.5, 60.0, 90.0, 3600.0]), start=MOMENTS, span=st.integers(0, 10**5))
def test_interval_ticks_are_multiples_and_counted_exactly(every: float, start: datetime, span: int) -> None:
    spec = Schedule(every=every)
    end = start + timedelta(seconds=span / 10)
    ticks = ticks_between(spec, start, end)
    assert all(start <= t <= end and t.timestamp() % every == 0 for t in ticks)
    assert all(b - a == timedelta(seconds=every) for a, b in zip(ticks, ticks[1:], strict=False))
    assert count_between(spec, start, end) == len([t for t in ticks if start < t < end])
    assert recent_ticks(spec, start, end, 3) == [t for t in ticks if t > start][-3:]


def test_without_catchup_only_the_current_tick_starts() -> None:
    spec = Schedule(cron="0 * * * *")
    last = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    due = due_ticks(spec, last, last + timedelta(hours=5, minutes=30))
    assert due.ticks == (datetime(2026, 3, 1, 15, 0, tzinfo=UTC),)
    assert due.dropped == 4  # 11:00 .. 14:00


def test_catchup_starts_at_most_the_limit_most_recent_oldest_first() -> None:
    spec = Schedule(cron="0 * * * *", catchup=True, catchup_limit=3)
    last = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    due = due_ticks(spec, last, last + timedelta(hours=5, minutes=30))
    assert [t.hour for t in due.ticks] == [13, 14, 15]
    assert due.dropped == 2  # 11:00 and 12:00
    short = due_ticks(spec, last, last + timedelta(hours=2))
    assert [t.hour for t in short.ticks] == [11, 12] and short.dropped == 0


def test_a_schedule_never_decided_and_a_repeated_tick_start_the_current_tick() -> None:
    spec = Schedule(every=60.0, catchup=True)
    now = datetime(2026, 3, 1, 10, 0, 42, tzinfo=UTC)
    assert due_ticks(spec, None, now).ticks == (datetime(2026, 3, 1, 10, 0, tzinfo=UTC),)
    assert due_ticks(spec, datetime(2026, 3, 1, 10, 0, tzinfo=UTC), now).ticks == (
        datetime(2026, 3, 1, 10, 0, tzinfo=UTC),
    )
