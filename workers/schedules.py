"""Firing a schedule's tick: catch-up, the overlap policy, and exactly one run per tick.

A wake-up of beat computes the ticks due since the schedule's last decided tick
(:func:`orchestrator.triggers.schedules.due_ticks`), has the store decide once what they do
(started, or skipped while the previous run is unfinished), cancels the previous run under
``cancel_previous``, and submits one run per tick with the tick's submission key. A second beat,
or the task redelivered after a crash, is told the same decision and submits the same keys:
nothing starts twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from orchestrator.definition.models import Overlap, Schedule, Workflow
from orchestrator.engine.coordinator import Coordinator
from orchestrator.engine.records import Trigger
from orchestrator.errors import RunStateError
from orchestrator.observability.metrics import SCHEDULE_TICKS
from orchestrator.store.schedules import RedisSchedules, TickAction, TickVerdict
from orchestrator.triggers.schedules import due_ticks, schedule_started_by, submission_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Firing:
    """What one wake-up did: the runs of its ticks (oldest first), or why it started none."""

    schedule: str
    ticks: tuple[str, ...]
    run_ids: tuple[str, ...] = ()
    skipped: bool = False
    cancelled: str | None = None
    """The previous run, when ``cancel_previous`` cancelled it."""


def fire(
    coordinator: Coordinator,
    schedules: RedisSchedules,
    workflow: Workflow,
    spec: Schedule,
    now: datetime,
    params: dict[str, Any] | None = None,
) -> Firing:
    """Start what ``spec``'s ticks due at ``now`` start, once, whoever else fires them too.

    Args:
        coordinator: Submits and cancels runs.
        schedules: The schedules' state.
        workflow: The workflow.
        spec: One of its schedules.
        now: The moment of the wake-up (aware).
        params: The runs' params (default: the schedule's).
    """
    name = spec.effective_name
    state = schedules.state(workflow.name, name)
    last = datetime.fromtimestamp(state.tick_at, ZoneInfo(spec.timezone)) if state.tick_at is not None else None
    due = due_ticks(spec, last, now)
    decision = schedules.decide(workflow.name, name, spec.overlap, due.ticks, due.dropped)
    if decision.verdict is TickVerdict.STALE:
        log.info("schedule %s of %s: tick %s is older than the last one decided", name, workflow.name, due.ticks[-1])
        return Firing(name, ())
    if decision.action is TickAction.SKIPPED:
        log.info(
            "schedule %s of %s: skipped %s, run %s is unfinished",
            name,
            workflow.name,
            decision.batch,
            decision.previous,
        )
        SCHEDULE_TICKS.labels(workflow.name, "skipped").inc()
        return Firing(name, decision.batch, skipped=True)
    ticks = [datetime.fromisoformat(t) for t in decision.batch]
    cancelled = None
    # A repeat of a decided tick cancels again: harmless once the previous run has ended.
    repeat = decision.verdict is TickVerdict.SEEN
    if spec.overlap is Overlap.CANCEL_PREVIOUS and decision.previous and (decision.previous_running or repeat):
        cancelled = _cancel(coordinator, decision.previous, schedule_started_by(name, ticks[-1]))
    run_ids: list[str] = []
    created = 0
    for tick in ticks:
        submitted = coordinator.submit(
            workflow,
            spec.params if params is None else params,
            trigger=Trigger.SCHEDULE,
            started_by=schedule_started_by(name, tick),
            idempotency_key=submission_key(name, tick),
            logical_date=tick.isoformat(),
        )
        run_ids.append(submitted.run_id)
        created += submitted.created
        log.info("schedule %s of %s, tick %s: run %s", name, workflow.name, tick.isoformat(), submitted.run_id)
    schedules.started(workflow.name, name, decision.batch[-1], run_ids[-1], created)
    SCHEDULE_TICKS.labels(workflow.name, "started").inc()
    return Firing(name, decision.batch, tuple(run_ids), cancelled=cancelled)


def _cancel(coordinator: Coordinator, run_id: str, by: str) -> str | None:
    try:
        coordinator.cancel(run_id, by)
    except RunStateError:  # it ended meanwhile: nothing to cancel
        return None
    log.info("cancelled run %s: %s started its next run", run_id, by)
    return run_id
