"""Sensor state: each sensor's last check, whether its condition holds, its edges and their runs.

The decision whether a check starts a run is one script (``lua/sense.lua``), so two beats or
sensor loops checking at the same moment fire one edge; the run is submitted with the edge's
number in its idempotency key, so they also start one run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from orchestrator.definition.models import Rearm
from orchestrator.store.connections import all_reachable
from orchestrator.store.scripts import Part

MAX_RESULT_CHARS = 2000
"""How much of a check's output the state keeps for ``orchestrator sensors``."""


@dataclass(frozen=True)
class SensorState:
    """What ``orchestrator sensors`` shows of one sensor (None: not checked yet, or no run yet)."""

    checked_at: datetime | None
    holds: bool | None
    result: str | None
    error: str | None
    checks: int
    edges: int
    last_run: str | None
    last_run_at: datetime | None


@all_reachable
class RedisSensors(Part):
    """Sensor state in the run store."""

    def observe(self, workflow: str, holds: bool, output: Any, now: float, cooldown: float, rearm: Rearm) -> int:
        """Record a check; the number of the edge whose run should start now, or 0."""
        result = json.dumps(output, default=repr)[:MAX_RESULT_CHARS]
        keys = [self.keys.sensor(workflow)]
        edge = self.scripts.sense(keys=keys, args=["1" if holds else "0", now, cooldown, rearm.value, result])
        return int(edge)

    def started(self, workflow: str, edge: int, run_id: str, now: float) -> None:
        """Record the run an edge started."""
        self.scripts.sensed(keys=[self.keys.sensor(workflow)], args=[edge, run_id, now])

    def failed(self, workflow: str, error: str, now: float) -> None:
        """Record a check that could not tell (its task raised): the condition is left as it was."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.keys.sensor(workflow), mapping={"checked_at": now, "error": error[:MAX_RESULT_CHARS]})
        pipe.hincrby(self.keys.sensor(workflow), "checks", 1)
        pipe.execute()

    def state(self, workflow: str) -> SensorState:
        found: dict[str, str] = self.redis.hgetall(self.keys.sensor(workflow))  # type: ignore[assignment]
        return SensorState(
            checked_at=_moment(found.get("checked_at")),
            holds=None if "holds" not in found else found["holds"] == "1",
            result=found.get("result"),
            error=found.get("error"),
            checks=int(found.get("checks", 0)),
            edges=int(found.get("edge", 0)),
            last_run=found.get("last_run"),
            last_run_at=_moment(found.get("last_run_at")),
        )


def _moment(value: str | None) -> datetime | None:
    return datetime.fromtimestamp(float(value), UTC) if value else None
