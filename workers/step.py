"""The step task: the thin Celery layer over :class:`~orchestrator.engine.runner.StepRunner`.

Its options are what makes a step reliable on Celery: acknowledged late (after the step ended),
rejected back to the queue when its worker process dies, no result written (outcomes live in
the run store), and :class:`~workers.request.StepRequest` to release a dead child's lease.
A message that is not a step of any run (malformed arguments, another run's plan, an item the
step never fanned out) runs nothing: it goes to the dead-letter queue with the reason.
"""

from __future__ import annotations

import json
import logging
import socket
from typing import Any

from celery import Celery, Task
from pydantic import ValidationError

from orchestrator.engine.unit import STEP_TASK, StepMessage
from orchestrator.errors import InvalidMessage
from orchestrator.observability.events import dead_lettered
from orchestrator.observability.metrics import DEAD_LETTERS
from workers.request import StepRequest
from workers.runtime import runtime_of

log = logging.getLogger(__name__)


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
    def run_step(task: Task, *args: Any, **kwargs: Any) -> None:
        """Run one step (or ``for_each`` item) of one run."""
        runtime = runtime_of(task.app)
        try:
            if args:
                raise InvalidMessage(f"a step message has keyword arguments only, not {len(args)} positional")
            message = _message(kwargs)
            worker = str(task.request.hostname or socket.gethostname())
            runtime.runner.run(message, str(task.request.id), worker)
        except InvalidMessage as exc:
            _dead_letter(task, args, kwargs, str(exc))

    return run_step


def _message(kwargs: dict[str, Any]) -> StepMessage:
    try:
        return StepMessage.model_validate(kwargs)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'kwargs'}: {e['msg']}" for e in exc.errors())
        raise InvalidMessage(f"not a step message: {problems}") from None


def _dead_letter(task: Task, args: tuple[Any, ...], kwargs: dict[str, Any], reason: str) -> None:
    """Keep a step message that cannot run, with its reason (the worker goes on serving)."""
    request = task.request
    body = json.dumps([list(args), kwargs, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}])
    info = request.delivery_info or {}
    letter = runtime_of(task.app).store.dead_letters.record(
        "invalid_message",
        reason,
        body=body,
        headers={"task": task.name, "id": request.id, "lang": "py"},
        queue=str(info.get("routing_key") or task.app.conf.task_default_queue),
        content_type="application/json",
        content_encoding="utf-8",
    )
    DEAD_LETTERS.labels("invalid_message").inc()
    dead_lettered(
        letter_id=letter.id, reason=letter.reason, queue=letter.queue, task_id=request.id, task=task.name, error=reason
    )
