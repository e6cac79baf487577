"""The run record: statuses, triggers, and the models ``status --json`` prints, parsed from the store.

A run is a hash of its own fields and a hash per step (see :mod:`orchestrator.store.keys`); the
field names are the record's, so :meth:`RunRecord.from_redis` and :meth:`StepRecord.from_redis`
are the one place that reads them back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class StepStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED_STEP


FINISHED_STEP = frozenset({StepStatus.SUCCEEDED, StepStatus.FAILED, StepStatus.SKIPPED, StepStatus.CANCELLED})
SKIPPING = "skipping"
"""Stored only: the instant between a join deciding to skip a step and the step ending skipped."""


class Trigger(StrEnum):
    """What started a run; its ``started_by`` says who (the forms are on each member)."""

    CLI = "cli"
    """``user:<OS user>``."""
    API = "api"
    """``token:<token name>``."""
    SCHEDULE = "schedule"
    """``schedule:<name>@<tick ISO time>``."""
    WEBHOOK = "webhook"
    """``hook:<name>/<delivery id>``."""
    SENSOR = "sensor"
    """``sensor:<workflow>``."""
    BACKFILL = "backfill"
    """``user:<OS user>``; the run's date is its tick's."""


class EventKind(StrEnum):
    """What happened to a run, as its history records it."""

    SUBMITTED = "submitted"
    QUEUED = "queued"
    STARTED = "started"
    RETRYING = "retrying"
    DEFERRED = "deferred"
    RECOVERED = "recovered"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    RETRIED = "retried"
    FINISHED = "finished"


class StepError(BaseModel):
    """Why a step failed: the exception type and message (never a traceback with locals)."""

    model_config = ConfigDict(frozen=True)

    type: str
    message: str


@dataclass(frozen=True)
class Outcome:
    """How an attempt (or the orchestrator, for a skip) ended a step or item: status, output, error."""

    status: StepStatus
    output: Any = None
    error: StepError | None = None

    @classmethod
    def succeeded(cls, output: Any) -> Outcome:
        return cls(StepStatus.SUCCEEDED, output=output)

    @classmethod
    def failed(cls, error: StepError) -> Outcome:
        return cls(StepStatus.FAILED, error=error)

    @classmethod
    def skipped(cls) -> Outcome:
        return cls(StepStatus.SKIPPED)

    def output_json(self) -> str:
        """The output as JSON for a succeeded outcome, ``""`` for none."""
        return json.dumps(self.output) if self.status is StepStatus.SUCCEEDED else ""

    def error_json(self) -> str:
        """The error as JSON, ``""`` for none."""
        return self.error.model_dump_json() if self.error else ""


class StepRecord(BaseModel):
    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    task_id: str | None = None
    worker: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    output: Any = None
    error: StepError | None = None
    items: int | None = Field(default=None, description="For for_each steps: how many items.")
    items_done: int | None = None

    @classmethod
    def from_redis(cls, state: Mapping[str, str], output: str | None) -> StepRecord:
        """A step from its hash and its output's JSON (None when it has none)."""
        status = state.get("status", StepStatus.PENDING.value)
        return cls(
            status=StepStatus.SKIPPED if status == SKIPPING else StepStatus(status),
            attempts=int(state.get("attempts", 0)),
            task_id=state.get("task_id") or None,
            worker=state.get("worker") or None,
            started_at=state.get("started_at") or None,
            finished_at=state.get("finished_at") or None,
            output=json.loads(output) if output is not None else None,
            error=StepError.model_validate_json(state["error"]) if state.get("error") else None,
            items=int(state["items"]) if state.get("items") else None,
            items_done=int(state["items_done"]) if state.get("items_done") else None,
        )


class RunEvent(BaseModel):
    """One event of a run's history (steps' items have none: their step's record counts them).

    Attributes:
        id: Its position in the history (later events have greater ids); pass it as ``after``.
        at: When it happened (the clock of the process that recorded it).
        event: What happened.
        step: The step it happened to, for step events.
        attempt: The attempt, for ``started``, ``retrying``, ``deferred`` and ``recovered``.
        worker: The worker, for ``started`` and ``recovered``.
        by: Who did it, for ``submitted``, ``cancelled`` and ``retried``.
        trigger: For ``submitted``: what started the run.
        status: For ``finished``: how the run ended.
        error: For ``failed``, ``retrying`` and ``deferred``: why.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    at: str
    event: EventKind
    step: str | None = None
    attempt: int | None = None
    worker: str | None = None
    by: str | None = None
    trigger: Trigger | None = None
    status: RunStatus | None = None
    error: StepError | None = None

    @classmethod
    def from_redis(cls, event_id: str, fields: Mapping[str, str]) -> RunEvent:
        """An event from a history stream entry."""
        return cls(
            id=event_id,
            at=fields["at"],
            event=EventKind(fields["event"]),
            step=fields.get("step") or None,
            attempt=int(fields["attempt"]) if fields.get("attempt") else None,
            worker=fields.get("worker") or None,
            by=fields.get("by") or None,
            trigger=Trigger(fields["trigger"]) if fields.get("trigger") else None,
            status=RunStatus(fields["status"]) if fields.get("status") else None,
            error=StepError.model_validate_json(fields["error"]) if fields.get("error") else None,
        )


class RunSummary(BaseModel):
    """A run without its steps: what lists of runs show (``runs --json``, ``GET /v1/runs``)."""

    run_id: str
    workflow: str
    version: int | None = None
    status: RunStatus
    trigger: Trigger
    started_by: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    created_at: str
    logical_date: str | None = Field(
        default=None, description="For a scheduled or backfilled run: the tick it is for; ${run.date} is its date."
    )
    started_at: str | None = None
    finished_at: str | None = None
    definition_hash: str | None = None

    @classmethod
    def from_redis(cls, meta: Mapping[str, str]) -> RunSummary:
        """A run from its own hash."""
        return cls(
            run_id=meta["run_id"],
            workflow=meta["workflow"],
            version=int(meta["version"]) if meta.get("version") else None,
            status=RunStatus(meta["status"]),
            trigger=Trigger(meta["trigger"]),
            started_by=meta.get("started_by") or None,
            params=json.loads(meta.get("params") or "{}"),
            created_at=meta["created_at"],
            logical_date=meta.get("logical_date") or None,
            started_at=meta.get("started_at") or None,
            finished_at=meta.get("finished_at") or None,
            definition_hash=meta.get("definition_hash") or None,
        )


class RunRecord(RunSummary):
    """One run with its steps, as ``status --json`` prints it."""

    steps: dict[str, StepRecord] = Field(default_factory=dict)

    @classmethod
    def from_redis(cls, meta: Mapping[str, str], steps: Mapping[str, StepRecord] | None = None) -> RunRecord:
        """A run from its own hash and its steps' records."""
        return cls(**RunSummary.from_redis(meta).model_dump(), steps=dict(steps or {}))


def now_iso() -> str:
    """UTC now, ISO-8601 with microseconds (the run record's timestamp format)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")
