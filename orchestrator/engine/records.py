"""The run record of SPEC.md: statuses and the models ``status --json`` and the API return."""

from __future__ import annotations

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


class Trigger(StrEnum):
    CLI = "cli"
    API = "api"
    SCHEDULE = "schedule"
    WEBHOOK = "webhook"
    SENSOR = "sensor"
    RETRY = "retry"


class StepError(BaseModel):
    """Why a step failed: the exception type and message (never a traceback with locals)."""

    model_config = ConfigDict(frozen=True)

    type: str
    message: str


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


class RunRecord(BaseModel):
    """One run, as ``status --json`` prints it."""

    run_id: str
    workflow: str
    version: int | None = None
    status: RunStatus
    trigger: Trigger
    started_by: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    definition_hash: str | None = None
    steps: dict[str, StepRecord] = Field(default_factory=dict)


def now_iso() -> str:
    """UTC now, ISO-8601 with microseconds (the run record's timestamp format)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")
