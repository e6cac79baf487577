"""Schedules' state in Redis: per schedule, the last tick and what it did, the last run, and counts.

One hash per schedule (:meth:`~orchestrator.store.keys.Keys.schedule`). A tick is decided once by
``lua/schedule.lua`` (started or skipped, against the previous run's status), so two beats sending
the same tick agree on what it does; the runs themselves are made exactly-once by their
submission keys.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import cast

from redis.client import Pipeline

from orchestrator.definition.models import Overlap
from orchestrator.errors import ServiceUnavailable
from orchestrator.store.connections import all_reachable
from orchestrator.store.scripts import Part

DECIDE_ATTEMPTS = 10
"""How often a decision is tried again when the last run changed under it (another beat started one)."""


class TickVerdict(StrEnum):
    """What ``lua/schedule.lua`` answered."""

    DECIDED = "decided"
    """This call decided the tick."""
    SEEN = "seen"
    """The tick was decided before: follow that decision (submissions are idempotent)."""
    STALE = "stale"
    """A newer tick was decided already: this one does nothing."""
    RETRY = "retry"
    """The last run changed since it was read; read it again."""


class TickAction(StrEnum):
    """What a decided tick does."""

    STARTED = "started"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class TickDecision:
    """A tick's decision: start its batch of ticks or skip it, and the run that was last before it."""

    verdict: TickVerdict
    action: TickAction | None
    batch: tuple[str, ...]
    """The ticks to start (ISO-8601, oldest first): the current one, or missed ones with catch-up."""
    previous: str | None
    previous_running: bool


@dataclass(frozen=True)
class ScheduleState:
    """What the store knows of one schedule (``orchestrator schedules`` shows it)."""

    tick: str | None = None
    """The latest tick decided (ISO-8601)."""
    tick_at: float | None = None
    action: TickAction | None = None
    last_run: str | None = None
    """The run of the latest tick that started one."""
    last_skipped: str | None = None
    started: int = 0
    skipped: int = 0
    dropped: int = 0
    """Missed ticks (beat was down) not started: all but the current with catch-up off, past the limit with it on."""

    @classmethod
    def from_redis(cls, fields: Mapping[str, str]) -> ScheduleState:
        return cls(
            tick=fields.get("tick") or None,
            tick_at=float(fields["tick_at"]) if fields.get("tick_at") else None,
            action=TickAction(fields["decision"]) if fields.get("decision") else None,
            last_run=fields.get("run") or None,
            last_skipped=fields.get("last_skipped") or None,
            started=int(fields.get("started") or 0),
            skipped=int(fields.get("skipped") or 0),
            dropped=int(fields.get("dropped") or 0),
        )


@all_reachable
class RedisSchedules(Part):
    """Per-schedule state: decisions of ticks, their runs, counts."""

    def state(self, workflow: str, name: str) -> ScheduleState:
        fields = cast(dict[str, str], self.redis.hgetall(self.keys.schedule(workflow, name)))
        return ScheduleState.from_redis(fields)

    def states(self, schedules: Sequence[tuple[str, str]]) -> list[ScheduleState]:
        """The state of each ``(workflow, name)``, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for workflow, name in schedules:
            pipe.hgetall(self.keys.schedule(workflow, name))
        return [ScheduleState.from_redis(fields) for fields in pipe.execute()]

    def decide(
        self, workflow: str, name: str, overlap: Overlap, ticks: Sequence[datetime], dropped: int
    ) -> TickDecision:
        """Decide once what the wake-up starting ``ticks`` does (``lua/schedule.lua``).

        Args:
            workflow: The workflow.
            name: The schedule's name.
            overlap: The schedule's overlap policy (skip decides here, against the last run's status).
            ticks: The ticks to start, oldest first (at least one); the last is the tick recorded.
            dropped: Missed ticks left out of ``ticks``, counted on the schedule.
        """
        state_key = self.keys.schedule(workflow, name)
        batch = json.dumps([t.isoformat() for t in ticks])
        newest = ticks[-1]
        tick, tick_at = newest.isoformat(), repr(newest.timestamp())
        for _ in range(DECIDE_ATTEMPTS):
            expected = str(self.redis.hget(state_key, "run") or "")
            status = str(self.redis.hget(self.keys.run(expected), "status") or "") if expected else ""
            args: list[str | int] = [expected, tick, tick_at, batch, dropped, overlap.value, status]
            verdict, action, stored, previous, running = (
                str(r or "") for r in self.scripts.schedule(keys=[state_key], args=args)
            )
            if verdict != TickVerdict.RETRY:
                return TickDecision(
                    TickVerdict(verdict),
                    TickAction(action) if action else None,
                    tuple(json.loads(stored)) if stored else (),
                    previous or None,
                    running == "1",
                )
        raise ServiceUnavailable(f"schedule {name!r} of {workflow!r}: its last run kept changing; try again")

    def started(self, workflow: str, name: str, tick: str, run_id: str, created: int) -> None:
        """Record the run of ``tick`` as the schedule's last (unless a newer tick was decided) and count ``created``."""
        state_key = self.keys.schedule(workflow, name)

        def write(pipe: Pipeline) -> None:
            current = pipe.hget(state_key, "tick")
            pipe.multi()
            if current == tick:
                pipe.hset(state_key, "run", run_id)
            if created:
                pipe.hincrby(state_key, "started", created)

        self.redis.transaction(write, state_key)
