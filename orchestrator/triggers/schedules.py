"""Schedules: the ticks of workflow ``schedule:`` entries (pure functions) and their celery beat entries.

``cron`` entries use croniter in the entry's own time zone (Celery's ``crontab`` matches fields
in the app's time zone, so "02:15 Europe/Paris" would drift with daylight saving time); ``every``
entries tick on multiples of the interval since the epoch. A tick is an aware datetime in the
entry's zone; its ISO form names it in the run's submission key (:func:`submission_key`), so two
beat processes (a failover, a mistaken double deployment) and a backfill of the same tick start
one run between them.

Each beat entry sends :data:`START_RUN_TASK`; what a tick then does (catch-up, overlap) is
``workers/schedules.py``'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from celery.schedules import BaseSchedule, schedstate
from croniter import croniter

from orchestrator.definition.durations import format_duration
from orchestrator.definition.models import Schedule, Workflow

START_RUN_TASK = "orchestrator.start_run"
COUNT_CAP = 100_000
"""Missed cron ticks are counted one by one up to this many (intervals are counted exactly)."""
_SECOND = timedelta(seconds=1)
_INSTANT = timedelta(microseconds=1)


@dataclass(frozen=True)
class Catchup:
    """What one wake-up of beat starts: ``ticks`` oldest first, and how many missed ticks it drops."""

    ticks: tuple[datetime, ...]
    dropped: int = 0


def entry_name(workflow: str, schedule: str) -> str:
    """The beat entry of a workflow's schedule (``nightly-batch/nightly``)."""
    return f"{workflow}/{schedule}"


def submission_key(schedule: str, tick: datetime) -> str:
    """The idempotency key of a tick's run: the same for beat and backfill, so a tick runs once."""
    return f"schedule:{schedule}:{tick.isoformat()}"


def schedule_started_by(schedule: str, tick: datetime) -> str:
    """``started_by`` of a scheduled run: ``schedule:<name>@<tick ISO time>``."""
    return f"schedule:{schedule}@{tick.isoformat()}"


def _zone(spec: Schedule) -> ZoneInfo:
    return ZoneInfo(spec.timezone)


def _every(spec: Schedule) -> float:
    assert spec.every is not None
    return spec.every


def current_tick(spec: Schedule, now: datetime) -> datetime:
    """The latest tick of ``spec`` at or before ``now``, in the entry's time zone."""
    zone = _zone(spec)
    if spec.cron is not None:
        # croniter's get_prev is strictly before; step a second ahead so an exact tick counts.
        at: datetime = croniter(spec.cron, now.astimezone(zone) + _SECOND).get_prev(datetime)
        return at
    every = _every(spec)
    return datetime.fromtimestamp(math.floor(now.timestamp() / every) * every, zone)


def next_ticks(spec: Schedule, now: datetime, count: int) -> list[datetime]:
    """The next ``count`` ticks of ``spec`` after ``now``, in the entry's time zone."""
    if spec.cron is not None:
        ticks = croniter(spec.cron, now.astimezone(_zone(spec)))
        return [ticks.get_next(datetime) for _ in range(count)]
    first = current_tick(spec, now)
    return [first + timedelta(seconds=_every(spec) * (n + 1)) for n in range(count)]


def ticks_between(spec: Schedule, start: datetime, end: datetime, limit: int | None = None) -> list[datetime]:
    """The ticks of ``spec`` from ``start`` to ``end``, both included, oldest first.

    Args:
        spec: The schedule.
        start: The first moment (aware).
        end: The last moment (aware).
        limit: Stop after this many ticks (a caller refusing long ranges asks for one more than it allows).
    """
    zone = _zone(spec)
    found: list[datetime] = []
    if end < start:
        return found
    if spec.cron is None:
        every = _every(spec)
        first, last = math.ceil(start.timestamp() / every), math.floor(end.timestamp() / every)
        if limit is not None:
            last = min(last, first + limit - 1)
        return [datetime.fromtimestamp(k * every, zone) for k in range(first, last + 1)]
    ticks = croniter(spec.cron, start.astimezone(zone) - _SECOND)
    while limit is None or len(found) < limit:
        at: datetime = ticks.get_next(datetime)
        if at > end:
            break
        if at >= start:
            found.append(at)
    return found


def recent_ticks(spec: Schedule, after: datetime, until: datetime, count: int) -> list[datetime]:
    """The most recent ``count`` ticks later than ``after`` and at or before ``until``, oldest first."""
    zone = _zone(spec)
    if spec.cron is None:
        every = _every(spec)
        last = math.floor(until.timestamp() / every)
        first = max(math.floor(after.timestamp() / every) + 1, last - count + 1)
        return [datetime.fromtimestamp(k * every, zone) for k in range(first, last + 1)]
    ticks = croniter(spec.cron, until.astimezone(zone) + _SECOND)
    found: list[datetime] = []
    while len(found) < count:
        at: datetime = ticks.get_prev(datetime)
        if at <= after:
            break
        if at <= until:
            found.append(at)
    return found[::-1]


def count_between(spec: Schedule, after: datetime, before: datetime, cap: int = COUNT_CAP) -> int:
    """How many ticks lie strictly between ``after`` and ``before`` (cron ticks counted up to ``cap``)."""
    if before <= after:
        return 0
    if spec.cron is None:
        every = _every(spec)
        first, last = math.floor(after.timestamp() / every) + 1, math.ceil(before.timestamp() / every) - 1
        return max(0, last - first + 1)
    return len([t for t in ticks_between(spec, after + _INSTANT, before, cap) if t < before])


def due_ticks(spec: Schedule, last: datetime | None, now: datetime) -> Catchup:
    """What a wake-up of beat at ``now`` starts, the latest decided tick being ``last``.

    Only the current tick, unless ``spec.catchup``: then every tick since ``last`` up to the
    current one, at most ``spec.catchup_limit`` of them (the most recent), oldest first. Missed
    ticks left out are counted as dropped. A schedule never decided before starts its current tick.
    """
    current = current_tick(spec, now)
    if last is None or last >= current:
        return Catchup((current,))
    if not spec.catchup:
        return Catchup((current,), count_between(spec, last, current))
    ticks = recent_ticks(spec, last, current, spec.catchup_limit)
    return Catchup(tuple(ticks), count_between(spec, last, ticks[0]))


class CronSchedule(BaseSchedule):  # type: ignore[misc]
    """A beat schedule that is due once per tick of a cron expression or interval, in its time zone."""

    def __init__(self, spec: Schedule, entry: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.entry = entry

    def _next(self, now: datetime) -> datetime:
        return next_ticks(self.spec, now, 1)[0]

    def is_due(self, last_run_at: datetime) -> schedstate:
        now = datetime.now(ZoneInfo("UTC"))
        tick = current_tick(self.spec, now)
        last = last_run_at if last_run_at.tzinfo else last_run_at.replace(tzinfo=ZoneInfo("UTC"))
        wait = max((self._next(now) - now).total_seconds(), 0.5)
        return schedstate(is_due=last < tick, next=wait)

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        now = datetime.now(ZoneInfo("UTC"))
        return self._next(now) - now

    def __repr__(self) -> str:
        return f"<CronSchedule {self.entry}: {describe(self.spec)}>"

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.spec, self.entry))


def describe(spec: Schedule) -> str:
    """``cron '0 1 * * *' Europe/Paris`` or ``every 1h``: when a schedule ticks, in words."""
    if spec.cron is not None:
        return f"cron {spec.cron!r} {spec.timezone}"
    return f"every {format_duration(_every(spec))}"


def beat_entries(workflows: dict[str, Workflow]) -> dict[str, dict[str, Any]]:
    """``beat_schedule`` entries for every schedule of every workflow, named ``workflow/schedule``."""
    entries: dict[str, dict[str, Any]] = {}
    for name, workflow in workflows.items():
        for spec in workflow.schedule:
            entry = entry_name(name, spec.effective_name)
            entries[entry] = {
                "task": START_RUN_TASK,
                "schedule": CronSchedule(spec, entry),
                "kwargs": {"workflow": name, "schedule": spec.effective_name, "params": spec.params},
                "options": {"expires": 3600},
            }
    return entries
