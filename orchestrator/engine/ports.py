"""The interfaces the engine needs: the run store (by concern) and the dispatcher.

The engine (coordinator and step runner) depends on these protocols only; ``orchestrator.store``
implements the store on Redis and ``orchestrator.broker`` the dispatcher on Celery. Each part of
the store is one concern: runs and plans, the transitions of steps, idempotency records, leases.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from orchestrator.engine.context import StepInputs, StepReads
from orchestrator.engine.records import (
    Outcome,
    RunEvent,
    RunRecord,
    RunStatus,
    RunSummary,
    StepError,
    Trigger,
    now_iso,
)
from orchestrator.engine.unit import StepMessage, Unit
from orchestrator.engine.verdicts import Cancellation, Claim, Completion, ItemEnd, Recovery, Reset, SideEffect
from orchestrator.plan.compiler import Plan

# --- what the store reads and writes ------------------------------------------------------------


@dataclass(frozen=True)
class NewRun:
    """A run to record: its plan, params and who started it."""

    run_id: str
    plan: Plan
    params: dict[str, Any]
    trigger: Trigger
    publish_grace: float
    """Seconds before the sweeper publishes the roots itself, should this process die first."""
    started_by: str | None = None
    created_at: str = field(default_factory=now_iso)
    logical_date: str | None = None
    """The moment the run is for (ISO-8601): its tick for a scheduled or backfilled run; default its creation."""


@dataclass(frozen=True)
class RunQuery:
    """Which runs a list shows, newest first: filters, a page size and where the last page ended."""

    workflow: str | None = None
    status: RunStatus | None = None
    trigger: Trigger | None = None
    since: float | None = None
    """Only runs created at or after this moment (epoch seconds)."""
    limit: int = 20
    after: str | None = None
    """The ``next`` cursor of the previous page."""


@dataclass(frozen=True)
class RunPage:
    """One page of runs, and the cursor of the next page (None: this was the last)."""

    runs: list[RunSummary]
    next: str | None


# --- the store, by concern ------------------------------------------------------------------------


class Runs(Protocol):
    """Runs and their plans."""

    def save_plan(self, plan: Plan) -> None: ...
    def plan(self, plan_id: str) -> Plan: ...
    def plan_of(self, run_id: str) -> tuple[Plan, str]: ...
    def create(self, run: NewRun, idempotency_key: str | None = None) -> tuple[str, bool]: ...
    def get(self, run_id: str) -> RunRecord: ...
    def page(self, query: RunQuery) -> RunPage: ...
    def cancel(self, run_id: str, steps: Sequence[str], by: str) -> Cancellation: ...
    def reset_for_retry(self, plan: Plan, run_id: str, by: str) -> Reset: ...
    def history(self, run_id: str, after: str = "-", limit: int = 1000) -> list[RunEvent]: ...


class Steps(Protocol):
    """The transitions of steps and ``for_each`` items, each atomic."""

    def claim_and_read(
        self, message: StepMessage, task_id: str, worker: str, lease_seconds: float, reads: StepReads
    ) -> tuple[Claim, StepInputs | None]: ...
    def complete(
        self, plan: Plan, unit: Unit, task_id: str, outcome: Outcome, *, lease_seconds: float
    ) -> Completion: ...
    def schedule_retry(
        self, unit: Unit, task_id: str, error: StepError, guard_until: float, *, counts: bool = True
    ) -> bool: ...
    def mark_queued(self, run_id: str, steps: Sequence[str], lease_seconds: float) -> None: ...
    def start_fan_out(self, unit: Unit, items: Sequence[Any]) -> None: ...
    def fanned_out(self, unit: Unit, lease_seconds: float) -> None: ...
    def item_input(self, unit: Unit) -> Any: ...
    def complete_item(self, unit: Unit, task_id: str, outcome: Outcome, *, lease_seconds: float) -> ItemEnd: ...
    def item_outputs(self, unit: Unit) -> list[Any]: ...
    def item_error(self, unit: Unit) -> StepError | None: ...


class SideEffects(Protocol):
    """Idempotency records: a side effect performed once, its output kept for later deliveries."""

    def begin(self, task: str, key: str, unit: Unit, task_id: str, ttl: float) -> SideEffect: ...
    def end(self, task: str, key: str, task_id: str, output: Any, ttl: float) -> None: ...
    def abandon(self, task: str, key: str) -> None: ...


class Leases(Protocol):
    """Liveness of running units, and of queued ones until a delivery claims them (the outbox)."""

    def renew(self, units: Iterable[Unit], lease_seconds: float) -> None: ...
    def release(self, unit: Unit) -> None: ...
    def expired(self, now: float, limit: int) -> list[Unit]: ...
    def recover(self, unit: Unit, guard_seconds: float) -> Recovery: ...


class RunStore(Protocol):
    """The engine's view of the run store."""

    @property
    def runs(self) -> Runs: ...
    @property
    def steps(self) -> Steps: ...
    @property
    def side_effects(self) -> SideEffects: ...
    @property
    def leases(self) -> Leases: ...


class LeaseHolder(Protocol):
    """Keeps the lease of a running unit alive while a block runs (renewed from another thread)."""

    def hold(self, unit: Unit) -> AbstractContextManager[None]: ...


# --- the broker ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """A step message and how to send it: queue, countdown, time limits and the name Flower shows."""

    message: StepMessage
    queue: str
    countdown: float | None = None
    soft_time_limit: float | None = None
    time_limit: float | None = None
    shadow: str | None = None

    @classmethod
    def of(cls, plan: Plan, message: StepMessage, countdown: float | None = None) -> Delivery:
        """The delivery of a message with its step's queue and time limits."""
        step = plan.steps[message.step]
        soft, hard = step.policy.time_limits()
        # Flower lists the step under the task it runs; run, step and item are in its kwargs repr.
        return cls(message, step.policy.queue, countdown, soft, hard, step.task)


class Dispatcher(Protocol):
    """Sends messages to workers."""

    def send(self, deliveries: Sequence[Delivery]) -> list[str]:
        """Publish all deliveries; returns their task ids in order."""
        ...

    def revoke(self, task_ids: Sequence[str]) -> None:
        """Ask workers to drop these messages if they have not started them."""
        ...

    def call(self, task: str, queue: str, kwargs: dict[str, Any]) -> str:
        """Send any registered task by name (hooks); returns its task id."""
        ...
