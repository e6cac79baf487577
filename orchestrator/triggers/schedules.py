"""Schedules: workflow ``schedule:`` entries as celery beat entries, one run per tick.

``cron`` entries use croniter in the entry's own time zone (Celery's ``crontab`` matches fields
in the app's time zone, so "02:15 Europe/Paris" would drift with daylight saving time). Each beat
entry sends :data:`START_RUN_TASK`; the task submits the run with an idempotency key named after
the entry and the tick it belongs to, so two beat processes (a failover, a mistaken double
deployment) still start one run per tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from celery.schedules import BaseSchedule, schedstate
from croniter import croniter

from orchestrator.definition.models import Schedule, Workflow

START_RUN_TASK = "orchestrator.start_run"


@dataclass(frozen=True)
class Tick:
    """The tick a schedule entry is in at some moment; its name ends the run's submission key."""

    entry: str
    at: datetime

    @property
    def name(self) -> str:
        return self.at.isoformat()


def entry_name(workflow: str, index: int) -> str:
    return f"{workflow}#{index}"


def current_tick(spec: Schedule, now: datetime, entry: str) -> Tick:
    """The latest tick of ``spec`` at or before ``now`` (intervals tick on multiples since the epoch)."""
    zone = ZoneInfo(spec.timezone)
    local = now.astimezone(zone)
    if spec.cron is not None:
        # croniter's get_prev is strictly before; step a second ahead so an exact tick counts.
        at = croniter(spec.cron, local + timedelta(seconds=1)).get_prev(datetime)
    else:
        assert spec.every is not None
        epoch = now.timestamp()
        at = datetime.fromtimestamp(epoch - epoch % spec.every, zone)
    return Tick(entry, at)


def next_ticks(spec: Schedule, now: datetime, count: int) -> list[datetime]:
    """The next ``count`` ticks of ``spec`` after ``now``, in the entry's time zone."""
    zone = ZoneInfo(spec.timezone)
    if spec.cron is not None:
        ticks = croniter(spec.cron, now.astimezone(zone))
        return [ticks.get_next(datetime) for _ in range(count)]
    assert spec.every is not None
    first = current_tick(spec, now, "").at
    return [first + timedelta(seconds=spec.every * (n + 1)) for n in range(count)]


class CronSchedule(BaseSchedule):  # type: ignore[misc]
    """A beat schedule that is due once per tick of a cron expression or interval, in its time zone."""

    def __init__(self, spec: Schedule, entry: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.entry = entry

    def _next(self, now: datetime) -> datetime:
        zone = ZoneInfo(self.spec.timezone)
        if self.spec.cron is not None:
            nxt: datetime = croniter(self.spec.cron, now.astimezone(zone)).get_next(datetime)
            return nxt
        assert self.spec.every is not None
        return current_tick(self.spec, now, self.entry).at + timedelta(seconds=self.spec.every)

    def is_due(self, last_run_at: datetime) -> schedstate:
        now = datetime.now(ZoneInfo("UTC"))
        tick = current_tick(self.spec, now, self.entry).at
        last = last_run_at if last_run_at.tzinfo else last_run_at.replace(tzinfo=ZoneInfo("UTC"))
        wait = max((self._next(now) - now).total_seconds(), 0.5)
        return schedstate(is_due=last < tick, next=wait)

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        now = datetime.now(ZoneInfo("UTC"))
        return self._next(now) - now

    def __repr__(self) -> str:
        return f"<CronSchedule {self.entry}: {self.spec.cron or f'every {self.spec.every}s'} {self.spec.timezone}>"

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, (self.spec, self.entry))


def beat_entries(workflows: dict[str, Workflow]) -> dict[str, dict[str, Any]]:
    """``beat_schedule`` entries for every schedule of every workflow."""
    entries: dict[str, dict[str, Any]] = {}
    for name, workflow in workflows.items():
        for index, spec in enumerate(workflow.schedule):
            entry = entry_name(name, index)
            entries[entry] = {
                "task": START_RUN_TASK,
                "schedule": CronSchedule(spec, entry),
                "kwargs": {"workflow": name, "entry": entry, "params": spec.params},
                "options": {"expires": 3600},
            }
    return entries
