"""Sentry: the SDK's set-up for each component, the engine's observer that reports failed steps, and Crons.

- :func:`init_sentry` starts the SDK in a worker, beat or API process (nothing without
  ``ORCH_SENTRY_DSN``), with the Celery integration, no default PII and the
  :class:`~orchestrator.observability.scrubbing.Scrubber` on every event.
- :class:`SentryObserver` listens to the engine (:mod:`orchestrator.engine.observers`): a step's
  final failure is one event (retries are not), grouped by workflow, step and error type so a
  failing step is one issue across runs; a scheduled run is a Crons check-in, ``in_progress`` when
  it is submitted and ``ok``/``error`` when it ends, wherever that happens (the check-in id is
  derived from the run id). Events captured while a step runs carry its tags.
"""

from __future__ import annotations

import logging
import math
import re
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal, cast

import sentry_sdk
from sentry_sdk.crons import capture_checkin
from sentry_sdk.integrations import Integration
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.dedupe import DedupeIntegration

from config import Settings
from orchestrator.definition.models import Schedule, Workflow
from orchestrator.engine.observers import Change, Observers
from orchestrator.engine.records import EventKind, RunStatus, RunSummary, Trigger
from orchestrator.errors import OrchestratorError
from orchestrator.observability.scrubbing import Scrubber

log = logging.getLogger(__name__)

Component = Literal["worker", "beat", "api", "cli"]
SCHEDULE_PREFIX = "schedule:"
CHECK_IN_NAMESPACE = uuid.UUID("6f6e1a52-8d2c-4c52-9a53-3a4c0c1e5e11")
"""uuid5 namespace of check-in ids: the same run gives the same id in every process."""
MAX_SLUG = 50


def init_sentry(settings: Settings, component: Component, **options: Any) -> bool:
    """Start the Sentry SDK in this process for ``component``, if ``ORCH_SENTRY_DSN`` is set.

    Args:
        settings: The settings (DSN, ``ORCH_SENTRY__*``).
        component: Tagged on every event of the process.
        options: More options for ``sentry_sdk.init`` (tests pass transport options).

    Returns:
        Whether the SDK was started.
    """
    if settings.sentry_dsn is None:
        return False
    scrub = Scrubber.of(settings)
    sentry = settings.sentry
    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        environment=sentry.environment,
        release=sentry.release,
        traces_sample_rate=sentry.traces_sample_rate,
        send_default_pii=False,
        # Locals and request bodies hold params and outputs: they leave only with send_data.
        include_local_variables=sentry.send_data,
        max_request_body_size="medium" if sentry.send_data else "never",
        before_send=cast(Any, scrub),  # Sentry's Event is a TypedDict; the scrubber takes any mapping
        before_send_transaction=cast(Any, scrub),
        integrations=_integrations(component),
        **options,
    )
    sentry_sdk.get_global_scope().set_tag("component", component)
    return True


def _integrations(component: Component) -> list[Integration]:
    # Beat's own tasks get no check-ins from the SDK: a schedule's check-in is its run's (SentryObserver).
    integrations: list[Integration] = [CeleryIntegration(monitor_beat_tasks=False)]
    if component == "api":
        from sentry_sdk.integrations.fastapi import FastApiIntegration
        from sentry_sdk.integrations.starlette import StarletteIntegration

        integrations += [StarletteIntegration(), FastApiIntegration()]
    return integrations


def install(
    observers: Observers,
    settings: Settings,
    runs: Callable[[str], RunSummary],
    workflows: Callable[[str], Workflow],
) -> SentryObserver | None:
    """Add a :class:`SentryObserver` to ``observers`` when ``ORCH_SENTRY_DSN`` is set.

    Args:
        observers: The process's observers.
        settings: The settings.
        runs: Reads a run (its trigger and who started it).
        workflows: Reads a workflow definition by name (its schedules).
    """
    if settings.sentry_dsn is None:
        return None
    observer = SentryObserver(runs, workflows, crons=settings.sentry.crons, scrubber=Scrubber.of(settings))
    observers.add(observer)
    return observer


class SentryObserver:
    """Reports the engine's changes to Sentry: final step failures, step tags, and Crons check-ins.

    Does nothing while the SDK is not started in this process.

    Args:
        runs: Reads a run record.
        workflows: Reads a workflow definition.
        crons: Send check-ins for scheduled runs.
        scrubber: Its deny list also scrubs the values of a failed run's deny-listed params
            (``password``) wherever they occur in the step's event, its exception message too.
    """

    def __init__(
        self,
        runs: Callable[[str], RunSummary],
        workflows: Callable[[str], Workflow],
        *,
        crons: bool = True,
        scrubber: Scrubber | None = None,
    ) -> None:
        self.runs = runs
        self.workflows = workflows
        self.crons = crons
        self.scrubber = scrubber

    def __call__(self, change: Change) -> None:
        if not sentry_sdk.get_client().is_active():
            return
        if change.kind is EventKind.STARTED:
            self.tag_step(change)
        elif change.kind is EventKind.FAILED and change.step is not None:
            self.report_failure(change)
        elif self.crons and change.kind is EventKind.SUBMITTED and change.trigger == Trigger.SCHEDULE:
            self.check_in_started(change)
        elif self.crons and (
            change.kind is EventKind.FINISHED or (change.kind is EventKind.CANCELLED and change.step is None)
        ):
            self.check_in_finished(change)

    def tag_step(self, change: Change) -> None:
        """Tag everything captured while the step runs (the user's own ``logging.error`` too).

        The Celery integration gives every task its own isolation scope: the tags end with the task.
        """
        scope = sentry_sdk.get_isolation_scope()
        scope.set_tags(step_tags(change))
        scope.add_event_processor(drop_attempt_errors)

    def report_failure(self, change: Change) -> None:
        """One event for a step that failed for good: its exception with traceback, or a message."""
        tags = step_tags(change)
        run = self._run(change.run_id)
        tags["trigger"] = change.trigger or (run.trigger.value if run else "unknown")
        error_type = change.error.type if change.error else type(change.cause).__name__
        with sentry_sdk.new_scope() as scope:
            scope.set_tags(tags)
            scope.fingerprint = [change.workflow, str(change.step), error_type]
            scope.set_context(
                "step",
                {"run_id": change.run_id, "workflow": change.workflow, "step": change.step, "item": change.item},
            )
            scope.set_level("error")
            if run is not None and self.scrubber is not None and (values := self.scrubber.denied_values(run.params)):
                scope.add_event_processor(cast(Any, Scrubber((), values, send_data=True)))
            if change.cause is not None:
                sentry_sdk.capture_exception(change.cause)
            else:
                message = change.error.message if change.error else "failed"
                sentry_sdk.capture_message(f"step {change.step} of {change.workflow} failed: {error_type}: {message}")

    def check_in_started(self, change: Change) -> None:
        """``in_progress`` for a scheduled run, upserting its monitor from the schedule."""
        name = schedule_name(change.started_by)
        if name is None:
            return
        spec = self._schedule(change.workflow, name)
        capture_checkin(
            monitor_slug=monitor_slug(change.workflow, name),
            check_in_id=check_in_id(change.run_id),
            status="in_progress",
            monitor_config=cast(Any, monitor_config(spec)) if spec is not None else None,
        )

    def check_in_finished(self, change: Change) -> None:
        """``ok`` or ``error`` by the run's status, when the run was scheduled."""
        run = self._run(change.run_id)
        if run is None or run.trigger is not Trigger.SCHEDULE:
            return
        name = schedule_name(run.started_by)
        if name is None:
            return
        status = change.status or run.status.value
        capture_checkin(
            monitor_slug=monitor_slug(run.workflow, name),
            check_in_id=check_in_id(run.run_id),
            status="ok" if status == RunStatus.SUCCEEDED else "error",
            duration=_duration(run),
        )

    def _run(self, run_id: str) -> RunSummary | None:
        try:
            return self.runs(run_id)
        except Exception:
            log.warning("Sentry: cannot read run %s", run_id, exc_info=True)
            return None

    def _schedule(self, workflow: str, name: str) -> Schedule | None:
        try:
            definition = self.workflows(workflow)
        except Exception:
            log.warning("Sentry: cannot read workflow %s for its monitor", workflow, exc_info=True)
            return None
        return next((s for s in definition.schedule if s.effective_name == name), None)


def drop_attempt_errors(event: Any, hint: dict[str, Any]) -> Any:
    """Drop what the Celery integration captures of a user task raising inside a step.

    The step calls the user's task in process, through the SDK's wrapper, so every failed
    attempt would be an event; the runner decides whether it is retried or final, and
    :meth:`SentryObserver.report_failure` reports the final one. The orchestrator's own errors
    escaping the step (a store outage) are kept.
    """
    values = (event.get("exception") or {}).get("values") or []
    mechanisms = {(value.get("mechanism") or {}).get("type") for value in values}
    exc_info = hint.get("exc_info")
    error = exc_info[1] if exc_info else None
    if "celery" in mechanisms and not isinstance(error, OrchestratorError):
        # The SDK's dedupe saw this exception first; the runner's report of it must not count as a repeat.
        DedupeIntegration.reset_last_seen()
        return None
    return event


def step_tags(change: Change) -> dict[str, str]:
    """The tags of a step's events: run, workflow, step, attempt, Celery task id (and item)."""
    tags = {"run_id": change.run_id, "workflow": change.workflow, "step": str(change.step)}
    if change.attempt is not None:
        tags["attempt"] = str(change.attempt)
    if change.item is not None:
        tags["item"] = str(change.item)
    if change.task_id:
        tags["celery_task_id"] = change.task_id
    return tags


def schedule_name(started_by: str | None) -> str | None:
    """The schedule of ``schedule:<name>@<tick>``, or None for another ``started_by``."""
    if not started_by or not started_by.startswith(SCHEDULE_PREFIX):
        return None
    name, at, _ = started_by.removeprefix(SCHEDULE_PREFIX).rpartition("@")
    return name if at and name else None


def monitor_slug(workflow: str, schedule: str) -> str:
    """The Crons monitor of one schedule of one workflow: ``<workflow>-<schedule>``, slugified, ≤ 50 chars."""
    slug = re.sub(r"[^a-z0-9_]+", "-", f"{workflow}-{schedule}".lower()).strip("-")
    if len(slug) <= MAX_SLUG:
        return slug
    digest = uuid.uuid5(CHECK_IN_NAMESPACE, f"{workflow}\0{schedule}").hex[:8]
    return f"{slug[: MAX_SLUG - 9].rstrip('-')}-{digest}"


def check_in_id(run_id: str) -> str:
    """The check-in id of a scheduled run: the same in the process that starts it and the one that ends it."""
    return uuid.uuid5(CHECK_IN_NAMESPACE, run_id).hex


def monitor_config(spec: Schedule) -> dict[str, Any]:
    """Sentry's monitor config for a schedule: its crontab or interval, and its timezone."""
    schedule: dict[str, Any]
    if spec.cron is not None:
        schedule = {"type": "crontab", "value": spec.cron}
    else:
        value, unit = _interval(float(spec.every or 60.0))
        schedule = {"type": "interval", "value": value, "unit": unit}
    return {"schedule": schedule, "timezone": spec.timezone}


def _interval(seconds: float) -> tuple[int, str]:
    """An interval in Sentry's units (minute at the finest, so shorter ones round up to a minute)."""
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600)):
        if seconds >= size and seconds % size == 0:
            return int(seconds // size), unit
    return max(1, math.ceil(seconds / 60)), "minute"


def _duration(run: RunSummary) -> float | None:
    if not run.finished_at:
        return None
    try:
        start = datetime.fromisoformat(run.started_at or run.created_at)
        return max(0.0, (datetime.fromisoformat(run.finished_at) - start).total_seconds())
    except ValueError:
        return None
