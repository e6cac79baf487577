"""The run engine: run records, the unit of work, trigger rules, the coordinator and the step runner.

It depends on the store and the broker only through the protocols of ``ports``; ``verdicts``
names what the store answers. Nothing here imports Redis or Celery.
"""

from orchestrator.engine.coordinator import Coordinator
from orchestrator.engine.records import RunRecord, RunStatus, StepError, StepRecord, StepStatus, Trigger
from orchestrator.engine.runner import StepRunner
from orchestrator.engine.unit import STEP_TASK, StepMessage, Unit

__all__ = [
    "STEP_TASK",
    "Coordinator",
    "RunRecord",
    "RunStatus",
    "StepError",
    "StepMessage",
    "StepRecord",
    "StepRunner",
    "StepStatus",
    "Trigger",
    "Unit",
]
