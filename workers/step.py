"""The step task: the thin Celery layer over :class:`~orchestrator.engine.runner.StepRunner`.

Its options are what makes a step reliable on Celery: acknowledged late (after the step ended),
rejected back to the queue when its worker process dies, no result written (outcomes live in
the run store), and :class:`~workers.request.StepRequest` to release a dead child's lease.
"""

from __future__ import annotations

import socket

from celery import Celery, Task

from orchestrator.engine.unit import STEP_TASK, StepMessage
from workers.request import StepRequest
from workers.runtime import runtime_of


def register_step_task(app: Celery) -> Task:
    """Register :data:`~orchestrator.engine.unit.STEP_TASK` on ``app`` (each app its own task class)."""

    @app.task(
        name=STEP_TASK,
        shared=False,
        bind=True,
        acks_late=True,
        reject_on_worker_lost=True,
        ignore_result=True,
        Request=StepRequest,
    )
    def run_step(task: Task, run_id: str, plan_id: str, step: str, attempt: int = 1, item: int | None = None) -> None:
        """Run one step (or ``for_each`` item) of one run."""
        message = StepMessage(run_id=run_id, plan_id=plan_id, step=step, attempt=attempt, item=item)
        worker = str(task.request.hostname or socket.gethostname())
        runtime_of(task.app).runner.run(message, str(task.request.id), worker)

    return run_step
