"""The wire format of the one task the orchestrator sends: run this step (or item) of this run.

Messages name a step, they do not carry the plan, arguments or upstream outputs: workers read
those from the run store. So a message has the same small size whatever the DAG (nested Celery
canvases grow with it, celery#5000), and a redelivered message can be checked against the run
state before anything runs.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict

STEP_TASK = "orchestrator.step"
HOOK_TASK = "orchestrator.hook"
HEADERS_ESTIMATE = 600
"""Bytes of Celery protocol-2 headers around a body (task name, id, retries, time limits, reprs)."""


class StepMessage(BaseModel):
    """Keyword arguments of :data:`STEP_TASK`.

    Attributes:
        run_id: The run.
        plan_id: The run's plan (saves a read per step; plans are immutable).
        step: The step name.
        attempt: Which attempt this message is for (1-based); a stale duplicate is dropped.
        item: For a ``for_each`` step, the index of the item; None for the step itself.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    plan_id: str
    step: str
    attempt: int = 1
    item: int | None = None

    def size(self) -> int:
        """Bytes of the whole message: protocol-2 body plus headers (reprs of the kwargs included)."""
        kwargs = json.dumps(self.model_dump(exclude_none=True), separators=(",", ":"))
        body = f'[[],{kwargs},{{"callbacks":null,"errbacks":null,"chain":null,"chord":null}}]'
        return len(body) + HEADERS_ESTIMATE + len(kwargs)
