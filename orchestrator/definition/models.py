"""The workflow definition: frozen pydantic models, the single source of truth past the loader.

Files are parsed by :mod:`orchestrator.definition.loader`; code can build the same models directly::

    Workflow(workflow="hello", steps={"greet": Step(task="demo.echo", args={"text": "hi"})})

These models check shape and types only. Checks across fields (``needs`` naming real steps, no
cycles, references pointing upstream) live in :mod:`orchestrator.definition.checks`.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    StrictInt,
    StringConstraints,
)

from orchestrator.definition.durations import format_duration, parse_duration

WORKFLOW_ID = r"^[a-z0-9][a-z0-9._-]*$"
STEP_NAME = r"^[A-Za-z_][A-Za-z0-9_-]*$"
TASK_NAME = r"^[A-Za-z_][A-Za-z0-9_.:-]*$"

RESERVED_TASK_PREFIXES = ("orchestrator.", "celery.")
"""Task names a step may not run: the orchestrator's own tasks (the step task, the schedule tick)
and Celery's built-in ones. A step naming ``orchestrator.step`` could act on another run."""


def is_reserved_task(name: str) -> bool:
    """Whether ``name`` is the orchestrator's or Celery's own task (see :data:`RESERVED_TASK_PREFIXES`)."""
    return name.startswith(RESERVED_TASK_PREFIXES)


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds; accepts ``500ms``, ``30s``, ``5m``, ``2h``, ``1d`` or a number."""
WorkflowId = Annotated[str, StringConstraints(pattern=WORKFLOW_ID, max_length=200)]
StepName = Annotated[str, StringConstraints(pattern=STEP_NAME, max_length=200)]
TaskName = Annotated[str, StringConstraints(pattern=TASK_NAME, max_length=200)]
RESERVED_QUEUES = frozenset({"unacked", "unacked_index", "unacked_mutex"})
"""Names kombu's Redis transport gives its own keys beside the queues (with ``_kombu*``): a queue
named so would share their key, and every worker would fail on the wrong Redis type."""


def queue_problem(name: str) -> str | None:
    """Why ``name`` cannot be a queue (it collides with the broker's own keys), or None."""
    if name in RESERVED_QUEUES or name.startswith("_kombu"):
        return (
            f"queue {name!r} would share the broker's own Redis key (kombu keeps {', '.join(sorted(RESERVED_QUEUES))} "
            "and _kombu.* beside the queues); choose another name"
        )
    return None


def _check_queue(name: str) -> str:
    if (problem := queue_problem(name)) is not None:
        raise ValueError(problem)
    return name


QueueName = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]+$", max_length=200), AfterValidator(_check_queue)
]
ErrorType = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.]*$", max_length=200)]


def _json_number(value: Any) -> Any:
    """Refuse what pydantic's lax floats take: booleans (true is not 1) and strings ("5")."""
    if isinstance(value, bool | str):
        kind = "boolean" if isinstance(value, bool) else "string"
        raise ValueError(f"expected a number, got {kind} {json.dumps(value)}")
    return value


# JSON types, not Python's lax conversions: `version: true` is not version 1, `max_attempts: "3"` not 3.
Number = Annotated[float, BeforeValidator(_json_number)]


class TriggerRule(StrEnum):
    """When a step may start once its needs have ended."""

    ALL_SUCCESS = "all_success"
    ALL_DONE = "all_done"
    ONE_FAILED = "one_failed"
    NONE_FAILED = "none_failed"


class Backoff(StrEnum):
    EXPONENTIAL = "exponential"
    FIXED = "fixed"


class ParamType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    ARRAY = "array"
    OBJECT = "object"


class Model(BaseModel):
    """Base of every definition model: immutable, and unknown fields are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)


class Param(Model):
    """A typed run input. A param without ``default`` is required."""

    type: ParamType = ParamType.STRING
    default: JsonValue = None
    description: str | None = None
    minimum: Number | None = None
    maximum: Number | None = None
    enum: tuple[JsonValue, ...] | None = None

    @property
    def required(self) -> bool:
        return "default" not in self.model_fields_set


class RetrySpec(Model):
    """Retry settings as written; unset fields inherit from the layer below."""

    max_attempts: Annotated[StrictInt, Field(ge=1, le=1000)] | None = None
    backoff: Backoff | None = None
    delay: Duration | None = None
    max_delay: Duration | None = None
    jitter: StrictBool | None = None
    on: tuple[ErrorType, ...] | None = None


class Policy(Model):
    """Execution policy; the workflow's ``defaults`` and each step carry one, all fields optional."""

    queue: QueueName | None = None
    timeout: Duration | None = None
    soft_timeout: Duration | None = None
    retry: RetrySpec | None = None


class Step(Model):
    """One node of the workflow DAG."""

    task: TaskName
    description: str | None = None
    needs: tuple[StepName, ...] = ()
    args: dict[str, JsonValue] = Field(default_factory=dict)
    for_each: str | None = None
    when: str | None = None
    trigger_rule: TriggerRule = TriggerRule.ALL_SUCCESS
    idempotency_key: str | None = None
    queue: QueueName | None = None
    timeout: Duration | None = None
    soft_timeout: Duration | None = None
    retry: RetrySpec | None = None

    @property
    def policy(self) -> Policy:
        """The policy fields this step sets itself."""
        return Policy(queue=self.queue, timeout=self.timeout, soft_timeout=self.soft_timeout, retry=self.retry)


class Overlap(StrEnum):
    """What a schedule's tick does while the previous run it started is still unfinished."""

    SKIP = "skip"
    """Start nothing; the tick is recorded as skipped."""
    ALLOW = "allow"
    """Start the new run anyway; both run at once."""
    CANCEL_PREVIOUS = "cancel_previous"
    """Cancel the previous run (its history says by which tick), then start the new one."""


ScheduleName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100)]


class Schedule(Model):
    """A beat entry: ``cron`` (with ``timezone``) or ``every``, the params for its runs and its policies."""

    name: ScheduleName | None = None
    cron: str | None = None
    every: Duration | None = None
    timezone: str = "UTC"
    overlap: Overlap = Overlap.SKIP
    catchup: StrictBool = False
    catchup_limit: Annotated[StrictInt, Field(ge=1, le=1000)] = 10
    """With ``catchup``: how many missed ticks (the most recent) one wake-up of beat starts at most."""
    params: dict[str, JsonValue] = Field(default_factory=dict)

    @property
    def effective_name(self) -> str:
        """``name``, or the cron expression, or ``every <duration>``: unique within a workflow."""
        if self.name is not None:
            return self.name
        if self.cron is not None:
            return self.cron
        return f"every {format_duration(self.every or 0.0)}"


class Hook(Model):
    """A task run with the finished run record (``on_success`` / ``on_failure``)."""

    task: TaskName
    queue: QueueName | None = None


class WebhookScheme(StrEnum):
    """How a webhook delivery is signed."""

    STANDARD = "standard"
    """Standard Webhooks: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature: v1,<base64>``."""
    GITHUB = "github"
    """GitHub's ``X-Hub-Signature-256: sha256=<hex>`` with ``X-GitHub-Delivery`` as the delivery id."""


HookName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*$", max_length=100)]


class Webhook(Model):
    """``POST /v1/hooks/<name>`` starts the workflow: a signed delivery whose JSON body is ``${event}``."""

    name: HookName
    scheme: WebhookScheme = WebhookScheme.STANDARD
    secret: HookName
    when: str | None = None
    params: dict[str, JsonValue] = Field(default_factory=dict)


class Rearm(StrEnum):
    """When a sensor whose condition held may start another run."""

    EDGE = "edge"
    """Only after the condition was seen false and then true again (and the cooldown passed)."""
    COOLDOWN = "cooldown"
    """Also while it stays true, once per ``cooldown``."""


class Sensor(Model):
    """A check task polled every ``every``; a run when ``when`` over its output turns true."""

    task: TaskName
    args: dict[str, JsonValue] = Field(default_factory=dict)
    every: Duration
    when: str
    cooldown: Duration = 0.0
    rearm: Rearm = Rearm.EDGE
    timeout: Duration | None = None
    queue: QueueName | None = None
    params: dict[str, JsonValue] = Field(default_factory=dict)


MIN_RETENTION = 1.0
"""The shortest ``retention``: a run's record stays readable for at least a second after it ended."""


def _retention(value: object) -> float:
    seconds = parse_duration(value)
    if seconds < MIN_RETENTION:
        raise ValueError(
            f"{value!r} is shorter than a second; a finished run's keys must be kept at least 1s (write e.g. 1h or 7d)"
        )
    return seconds


Retention = Annotated[float, BeforeValidator(_retention)]
"""Seconds a finished run's keys are kept in Redis: a duration of at least a second."""


class Workflow(Model):
    """A whole workflow definition."""

    workflow: WorkflowId
    version: Annotated[StrictInt, Field(ge=0)] | None = None
    description: str | None = None
    params: dict[StepName, Param] = Field(default_factory=dict)
    defaults: Policy = Field(default_factory=Policy)
    schedule: tuple[Schedule, ...] = ()
    webhook: Webhook | None = None
    sensor: Sensor | None = None
    steps: Annotated[dict[StepName, Step], Field(min_length=1)]
    on_failure: Hook | None = None
    on_success: Hook | None = None
    retention: Retention | None = None
    """Seconds its finished runs' keys are kept in Redis; unset: ``ORCH_RUN_RETENTION``."""

    @property
    def name(self) -> str:
        return self.workflow

    def dump(self) -> dict[str, Any]:
        """The definition as plain JSON data, defaults omitted (what a file would say)."""
        return self.model_dump(mode="json", exclude_defaults=True)
