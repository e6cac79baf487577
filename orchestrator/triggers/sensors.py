"""Sensors: a check task polled on a schedule; a run when its condition over the output turns true.

Beat sends :data:`SENSE_TASK` every ``every`` (one entry per sensor, :func:`beat_entries`); a
worker runs the check in that short task and holds no slot between checks. What the check saw
is judged here (:func:`read`, pure); whether it is an *edge* that starts a run is decided
atomically in the store (``lua/sense.lua``):

- ``rearm: edge`` (the default): a run when the condition turns true, none while it stays true,
  the next only after a check saw it false and then true again;
- ``rearm: cooldown``: also again while it stays true, once every ``cooldown``;
- either way no two runs start within ``cooldown`` of each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from orchestrator.definition.expressions import evaluate, parse_expression
from orchestrator.definition.models import Sensor, Workflow
from orchestrator.definition.references import render
from orchestrator.triggers.payload import resolver

SENSE_TASK = "orchestrator.sense"


@dataclass(frozen=True)
class Reading:
    """A check's verdict: whether the condition holds, and the params a run it starts would get."""

    holds: bool
    params: dict[str, Any]


def read(sensor: Sensor, output: Any) -> Reading:
    """Judge a check's output by the sensor's ``when`` and map it to params.

    Raises:
        InvalidArgument: the condition or a param names a field the output lacks.
        ExpressionError: the condition compares values of the wrong types.
    """

    resolve = resolver(output, "the check's output does not fit the sensor")
    holds = evaluate(parse_expression(sensor.when), resolve)
    params = render(sensor.params, resolve) if holds else {}
    assert isinstance(params, dict)
    return Reading(holds, params)


def started_by(workflow: str) -> str:
    """Who a sensor's run records as its starter: ``sensor:<workflow>``."""
    return f"sensor:{workflow}"


def idempotency_key(edge: int) -> str:
    """The submission key of an edge's run: however many checks see the edge, one run."""
    return f"sensor:edge:{edge}"


def entry_name(workflow: str) -> str:
    return f"sensor:{workflow}"


def beat_entries(workflows: dict[str, Workflow]) -> dict[str, dict[str, Any]]:
    """``beat_schedule`` entries: each workflow's sensor checked every ``every``."""
    entries: dict[str, dict[str, Any]] = {}
    for name, workflow in workflows.items():
        if (sensor := workflow.sensor) is None:
            continue
        options: dict[str, Any] = {"expires": sensor.every}  # a check that waited a whole interval is stale
        if sensor.queue is not None:
            options["queue"] = sensor.queue
        if sensor.timeout is not None:
            options.update(soft_time_limit=sensor.timeout, time_limit=sensor.timeout + 5)
        entries[entry_name(name)] = {
            "task": SENSE_TASK,
            "schedule": timedelta(seconds=sensor.every),
            "kwargs": {"workflow": name},
            "options": options,
        }
    return entries
