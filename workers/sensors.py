"""The task beat sends for each sensor: run its check, and start a run when the condition turns true."""

from __future__ import annotations

import logging
import time

from orchestrator.engine.records import Trigger
from orchestrator.triggers import sensors
from workers.runtime import CeleryTasks, WorkerApp

log = logging.getLogger(__name__)


def register(app: WorkerApp) -> None:
    """Register :data:`orchestrator.triggers.sensors.SENSE_TASK` on ``app``."""
    checks = CeleryTasks(app)

    @app.task(name=sensors.SENSE_TASK, acks_late=True, ignore_result=True, shared=False)
    def sense(workflow: str) -> str | None:
        definition = app.registry.get(workflow)
        sensor = definition.sensor
        if sensor is None:
            log.warning("workflow %s has no sensor any more; its beat entry goes at beat's next start", workflow)
            return None
        store = app.runtime.store.sensors
        now = time.time()
        try:
            output = checks(sensor.task, dict(sensor.args))
            reading = sensors.read(sensor, output)
        except Exception as exc:  # a check that cannot tell changes nothing
            store.failed(workflow, f"{type(exc).__name__}: {exc}", now)
            log.warning("sensor of %s: the check %s failed: %s", workflow, sensor.task, exc)
            return None
        edge = store.observe(workflow, reading.holds, output, now, sensor.cooldown, sensor.rearm)
        if not edge:
            return None
        submitted = app.runtime.coordinator.submit(
            definition,
            reading.params,
            trigger=Trigger.SENSOR,
            started_by=sensors.started_by(workflow),
            idempotency_key=sensors.idempotency_key(edge),
        )
        store.started(workflow, edge, submitted.run_id, now)
        if submitted.created:
            log.info("sensor of %s: condition turned true (edge %d): run %s", workflow, edge, submitted.run_id)
        return submitted.run_id
