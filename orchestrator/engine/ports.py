"""The interfaces the engine needs: the run store (by concern) and the dispatcher.

The engine (coordinator and step runner) depends on these protocols only; ``orchestrator.store``
implements the store on Redis and ``orchestrator.broker`` the dispatcher on Celery. Each part of
the store is one concern: runs and plans, the transitions of steps, idempotency records, leases.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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
from orchestrator.errors import InvalidArgument
from orchestrator.plan.compiler import Plan

# --- what the store reads and writes ------------------------------------------------------------

RUN_RETENTION = 7 * 86400.0
"""Seconds a finished run's keys are kept when nothing says otherwise (``ORCH_RUN_RETENTION``'s default)."""


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
    archive: bool = False
    """Written to the durable history when it ends (``ORCH_HISTORY_URL`` is set): the run-ending scripts
    put it in the store's archive queue, and retention keeps it until the exporter has written it."""
    retention: float = RUN_RETENTION
    """Seconds its keys are kept once it ended: the workflow's ``retention``, else ``ORCH_RUN_RETENTION``."""


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
    actor: str | None = None
    """Only runs started by exactly this actor (``started_by``: ``token:svc``, ``user:ana``)."""
    until: float | None = None
    """Only runs created before this moment (epoch seconds)."""


@dataclass(frozen=True)
class RunPage:
    """One page of runs, and the cursor of the next page (None: this was the last)."""

    runs: list[RunSummary]
    next: str | None


@dataclass(frozen=True, order=True)
class ListKey:
    """Where a run sits in a list of runs: its creation score in the runs index, then its id.

    Lists are newest first, greater keys first; a page's ``next`` cursor is the key of the last
    run it examined, and the next page starts strictly below it. The hot store and the history
    order runs by the same key, so one cursor continues a list across both.
    """

    score: float
    run_id: str

    def cursor(self) -> str:
        """The key as the ``next`` of a page: ``SCORE:RUN_ID``."""
        return f"{self.score!r}:{self.run_id}"

    @classmethod
    def parse(cls, text: str) -> ListKey:
        """A cursor back into a key.

        Raises:
            InvalidArgument: not a cursor this server gave.
        """
        score, sep, run_id = text.partition(":")
        try:
            if not sep or not run_id:
                raise ValueError(text)
            return cls(float(score), run_id)
        except ValueError:
            raise InvalidArgument(
                "not a cursor this server gave; pass the `next` of the previous page", "next"
            ) from None


@dataclass(frozen=True)
class Listed:
    """A run of a list with its :class:`ListKey`."""

    key: ListKey
    run: RunSummary


@dataclass(frozen=True)
class ArchivedRun:
    """A finished run as the durable history keeps it, read whole from the hot store.

    Attributes:
        record: The run record with its steps (outputs and errors included).
        events: Its history, oldest first.
        epoch: How many times it was retried; a later epoch replaces an earlier one in the history.
        created: Its score in the runs index (creation time, epoch seconds): the key lists sort by.
    """

    record: RunRecord
    events: list[RunEvent]
    epoch: int
    created: float


# --- the store, by concern ------------------------------------------------------------------------


class Runs(Protocol):
    """Runs and their plans."""

    def save_plan(self, plan: Plan) -> None: ...
    def plan(self, plan_id: str) -> Plan: ...
    def plan_of(self, run_id: str) -> tuple[Plan, str]: ...
    def create(
        self, run: NewRun, idempotency_key: str | None = None, outbound: Mapping[str, Outbound] | None = None
    ) -> tuple[str, bool]: ...
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
        self,
        plan: Plan,
        unit: Unit,
        task_id: str,
        outcome: Outcome,
        *,
        lease_seconds: float,
        outbound: Mapping[str, Outbound] | None = None,
        epoch: int | None = None,
    ) -> Completion: ...
    def schedule_retry(
        self, unit: Unit, task_id: str, error: StepError, guard_until: float, *, counts: bool = True
    ) -> bool: ...
    def mark_queued(self, run_id: str, steps: Sequence[str], lease_seconds: float) -> None: ...
    def start_fan_out(self, unit: Unit, items: Sequence[Any]) -> None: ...
    def fanned_out(self, unit: Unit, lease_seconds: float) -> None: ...
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


class Archive(Protocol):
    """Finished runs waiting for the durable history, oldest first (the hot store's side of the export).

    A run ending with ``archive`` set joins the queue, scored by when it ended; the exporter reads a
    batch, writes it to the history, then removes it, so a run lost between the two is written again
    (a no-op: the history is idempotent on the run id). Retention keeps a run while it is queued.
    """

    def pending(self, limit: int) -> list[tuple[str, float]]:
        """Up to ``limit`` queued run ids with their scores, oldest first."""
        ...

    def read(self, run_ids: Sequence[str]) -> dict[str, ArchivedRun]:
        """The runs, read whole; a run whose keys are gone is left out."""
        ...

    def done(self, entries: Sequence[tuple[str, float]]) -> int:
        """Dequeue these runs, each only if its score is still the one read (a run that ended again
        since, after a retry, stays queued for its new end). Returns how many left the queue."""
        ...

    def defer(self, run_id: str, seconds: float) -> None:
        """Move a run that cannot be written now to the back of the queue, ``seconds`` from now."""
        ...

    def hot(self, run_ids: Sequence[str]) -> dict[str, float]:
        """The runs among these still in the hot store, with their creation score."""
        ...

    def hold(self, owner: str, seconds: float) -> bool:
        """Take or renew the exporter's lock for ``seconds``; False while another owner holds it."""
        ...

    def release(self, owner: str) -> None:
        """Let the lock go, if ``owner`` holds it."""
        ...


class HistoryWriter(Protocol):
    """Writes finished runs to the durable history."""

    def write(self, runs: Sequence[ArchivedRun]) -> int:
        """Write the runs in one transaction, each once: a run already there at the same epoch is left
        alone, one at an earlier epoch (it was retried since) replaced. Returns how many were new."""
        ...


class RunHistory(Protocol):
    """Reads the durable history: runs that may be gone from the hot store."""

    def get(self, run_id: str) -> RunRecord:
        """The run's record. Raises RunNotFound."""
        ...

    def listed(self, query: RunQuery) -> list[Listed]:
        """Up to ``query.limit`` runs matching it, greatest key first, below ``query.after``."""
        ...

    def history(self, run_id: str, after: str = "-", limit: int = 1000) -> list[RunEvent]:
        """The run's events after the event id ``after``. Raises RunNotFound."""
        ...


class LeaseHolder(Protocol):
    """Keeps the lease of a running unit alive while a block runs (renewed from another thread)."""

    def hold(self, unit: Unit) -> AbstractContextManager[None]: ...


# --- the broker ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
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


@dataclass(frozen=True, slots=True)
class Outbound:
    """A message built for its queue, for the run store to push itself (the broker is its Redis).

    Attributes:
        task_id: The message's task id.
        queue: Its queue's name.
        priority: Its priority (the broker keeps a list per priority step).
        payload: The bytes to push, as the broker's transport stores them.
    """

    task_id: str
    queue: str
    priority: int
    payload: str


class Dispatcher(Protocol):
    """Sends messages to workers."""

    def send(self, deliveries: Sequence[Delivery]) -> list[str]:
        """Publish all deliveries; returns their task ids in order."""
        ...

    def outbound(self, deliveries: Sequence[Delivery]) -> list[Outbound] | None:
        """The deliveries' messages for the run store to push inside its own atomic call, or None
        when the broker is not the store's Redis (then :meth:`send` publishes them)."""
        ...

    def pushed(self, messages: Sequence[Outbound]) -> None:
        """The store pushed these messages (from :meth:`outbound`): whatever publishing them owes (events)."""
        ...

    def revoke(self, task_ids: Sequence[str]) -> None:
        """Ask workers to drop these messages if they have not started them."""
        ...

    def call(self, task: str, queue: str, kwargs: dict[str, Any]) -> str:
        """Send any registered task by name (hooks); returns its task id."""
        ...
