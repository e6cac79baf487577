"""The beat scheduler: celery beat's own, with every workflow schedule of ``ORCH_WORKFLOWS_DIR`` added.

The workflows are read when beat sets up its schedule, not when the app is imported.
"""

from __future__ import annotations

from celery.beat import PersistentScheduler

from orchestrator.triggers import sensors
from orchestrator.triggers.schedules import beat_entries
from workers.runtime import WorkerApp


class WorkflowScheduler(PersistentScheduler):  # type: ignore[misc]
    """``beat_scheduler`` of the worker app: Celery's persistent scheduler plus the workflows' schedules and sensors."""

    def setup_schedule(self) -> None:
        if isinstance(self.app, WorkerApp):
            workflows = self.app.registry.workflows
            entries = {**beat_entries(workflows), **sensors.beat_entries(workflows)}
            self.app.conf.beat_schedule = {**(self.app.conf.beat_schedule or {}), **entries}
        super().setup_schedule()
