"""The task beat sends: start one run of a scheduled workflow, once per tick."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from orchestrator.engine.records import Trigger
from orchestrator.triggers.schedules import START_RUN_TASK, current_tick
from workers.runtime import WorkerApp

log = logging.getLogger(__name__)


def register(app: WorkerApp) -> None:
    """Register :data:`orchestrator.triggers.schedules.START_RUN_TASK` on ``app``."""

    @app.task(name=START_RUN_TASK, acks_late=True, ignore_result=True, shared=False)
    def start_run(workflow: str, entry: str, params: dict[str, Any]) -> str | None:
        definition = app.registry.get(workflow)
        spec = definition.schedule[int(entry.rsplit("#", 1)[1])]
        tick = current_tick(spec, datetime.now(UTC), entry)
        # The submission key makes the run exactly-once per tick, even with two beats running.
        run_id = app.runtime.coordinator.submit(
            definition,
            params,
            trigger=Trigger.SCHEDULE,
            started_by=f"schedule:{entry}",
            idempotency_key=f"schedule:{entry}:{tick.name}",
        ).run_id
        log.info("schedule %s tick %s: run %s", entry, tick.name, run_id)
        return run_id
