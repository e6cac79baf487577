"""The task beat sends: fire one schedule of a workflow (``workers/schedules.py``), once per tick."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from orchestrator.definition.models import Schedule, Workflow
from orchestrator.errors import WorkflowNotFound
from orchestrator.triggers.schedules import START_RUN_TASK
from workers.runtime import WorkerApp
from workers.schedules import fire


def register(app: WorkerApp) -> None:
    """Register :data:`orchestrator.triggers.schedules.START_RUN_TASK` on ``app``."""

    @app.task(name=START_RUN_TASK, acks_late=True, ignore_result=True, shared=False)
    def start_run(
        workflow: str, schedule: str | None = None, params: dict[str, Any] | None = None, entry: str | None = None
    ) -> list[str]:
        definition = app.registry.get(workflow)
        spec = _schedule(definition, schedule, entry)
        runtime = app.runtime
        firing = fire(runtime.coordinator, runtime.store.schedules, definition, spec, datetime.now(UTC), params)
        return list(firing.run_ids)


def _schedule(workflow: Workflow, name: str | None, entry: str | None) -> Schedule:
    """The schedule a message names: by name, or by ``workflow#index`` (messages of an older beat)."""
    for spec in workflow.schedule:
        if spec.effective_name == name:
            return spec
    if name is None and entry is not None and entry.rpartition("#")[2].isdigit():
        index = int(entry.rpartition("#")[2])
        if index < len(workflow.schedule):
            return workflow.schedule[index]
    names = ", ".join(repr(s.effective_name) for s in workflow.schedule) or "none"
    raise WorkflowNotFound(f"workflow {workflow.name!r} has no schedule {name or entry!r}; its schedules: {names}")
