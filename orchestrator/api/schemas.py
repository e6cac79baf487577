"""What the API's routes take and answer, beyond the run models the engine already has."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from orchestrator.engine.records import RunEvent, RunSummary


class SubmitRequest(BaseModel):
    """``POST /v1/workflows/{name}/runs``."""

    model_config = ConfigDict(extra="forbid")

    params: dict[str, JsonValue] = Field(default_factory=dict, description="The run's params, by name.")
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The same key for the same workflow answers with the same run (also: the Idempotency-Key header).",
    )


class SubmitResponse(BaseModel):
    run_id: str
    created: bool = Field(description="False when an earlier submission with the same idempotency key made the run.")


class RunPageResponse(BaseModel):
    """``GET /v1/runs``: runs newest first, without their steps."""

    runs: list[RunSummary]
    next: str | None = Field(description="Pass as `next` for the following page; null on the last page.")


class EventPage(BaseModel):
    """``GET /v1/runs/{id}/events``: the run's history, oldest first."""

    events: list[RunEvent]
    next: str | None = Field(description="Pass as `after` for the following events; null when there were fewer.")


class StepInfo(BaseModel):
    name: str
    task: str
    needs: list[str]
    trigger_rule: str
    for_each: str | None = None
    when: str | None = None


class ScheduleInfo(BaseModel):
    name: str = Field(description="Its name, or the cron expression, or `every <duration>`.")
    cron: str | None = None
    every: float | None = None
    timezone: str
    overlap: str = Field(description="`skip`, `allow` or `cancel_previous`: a tick while its previous run runs.")
    catchup: bool
    catchup_limit: int
    params: dict[str, Any]
    next: list[str] = Field(description="The next fire times, ISO-8601.")


class WebhookInfo(BaseModel):
    name: str = Field(description="`POST /v1/hooks/{name}` starts the workflow.")
    scheme: str = Field(description="`standard` (Standard Webhooks) or `github`.")
    when: str | None = None


class SensorInfo(BaseModel):
    task: str
    every: float
    when: str
    cooldown: float
    rearm: str


class WorkflowSummary(BaseModel):
    """``GET /v1/workflows``."""

    name: str
    version: int | None = None
    description: str | None = None
    step_count: int
    params: dict[str, Any] = Field(description="The params as a JSON Schema object.")
    schedules: list[ScheduleInfo]
    webhook: WebhookInfo | None = None
    sensor: SensorInfo | None = None


class WorkflowDetail(WorkflowSummary):
    """``GET /v1/workflows/{name}``."""

    definition_hash: str
    steps: list[StepInfo]
    diagram: str = Field(description="The DAG as a Mermaid flowchart.")


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)


class HookRun(BaseModel):
    workflow: str
    run_id: str
    created: bool = Field(description="False when this delivery id started the run before (a re-delivery).")


class HookResponse(BaseModel):
    """``POST /v1/hooks/{name}``: the run the delivery started, or why it started none."""

    run_id: str | None = Field(description="The run started (the first, when several workflows share the hook).")
    reason: str | None = Field(default=None, description="Why no run started: the hook's `when` filter.")
    runs: list[HookRun] = Field(default_factory=list, description="Every run, one per workflow the delivery fits.")
