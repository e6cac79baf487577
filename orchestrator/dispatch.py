"""Publishing step messages: the one place the orchestrator talks to the broker.

The coordinator is given a Celery app (it never imports the worker package) and sends the step
task by name. Messages of one call are published in one kombu batch (a pipeline on Redis)
rather than one round trip each as ``celery.group`` does (celery#1803).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from celery import Celery

from orchestrator.compiler import Plan
from orchestrator.messages import STEP_TASK, StepMessage

HARD_LIMIT_GRACE = 10.0
"""Seconds between the soft time limit (raised in the task) and the hard kill."""


@dataclass(frozen=True)
class Delivery:
    """A step message and how to send it."""

    message: StepMessage
    queue: str
    countdown: float | None = None
    soft_time_limit: float | None = None
    time_limit: float | None = None
    shadow: str | None = None


class Dispatcher(Protocol):
    """Sends step messages to workers."""

    def send(self, deliveries: Sequence[Delivery]) -> list[str]:
        """Publish all deliveries; returns their task ids in order."""
        ...

    def revoke(self, task_ids: Sequence[str]) -> None:
        """Ask workers to drop these messages if they have not started them."""
        ...

    def call(self, task: str, queue: str, kwargs: dict[str, Any]) -> str:
        """Send any registered task by name (hooks); returns its task id."""
        ...


def delivery(plan: Plan, message: StepMessage, countdown: float | None = None) -> Delivery:
    """The delivery of a step message with the step's queue and time limits.

    The step's ``timeout`` is the soft limit (``SoftTimeLimitExceeded`` is raised in the task and
    handled as a ``TimeoutError``); the hard kill follows :data:`HARD_LIMIT_GRACE` later. An
    explicit ``soft_timeout`` moves the soft limit earlier and keeps ``timeout`` as the hard one.
    """
    step = plan.steps[message.step]
    policy = step.policy
    soft: float | None
    hard: float | None
    if policy.soft_timeout is not None:
        soft, hard = policy.soft_timeout, policy.timeout
    else:
        soft = policy.timeout
        hard = policy.timeout + HARD_LIMIT_GRACE if policy.timeout is not None else None
    label = f"{step.task}[{plan.workflow}.{message.step}" + ("" if message.item is None else f"#{message.item}") + "]"
    return Delivery(message, policy.queue, countdown, soft, hard, label)


class CeleryDispatcher:
    """:class:`Dispatcher` over a Celery app (any broker kombu supports)."""

    def __init__(self, app: Celery, batch_size: int = 1000) -> None:
        self.app = app
        self.batch_size = batch_size

    def send(self, deliveries: Sequence[Delivery]) -> list[str]:
        ids: list[str] = []
        if not deliveries:
            return ids
        with self.app.producer_or_acquire() as producer, producer.batch(max_size=self.batch_size):
            for d in deliveries:
                result = self.app.send_task(
                    STEP_TASK,
                    kwargs=d.message.model_dump(exclude_none=True),
                    queue=d.queue,
                    countdown=d.countdown,
                    soft_time_limit=d.soft_time_limit,
                    time_limit=d.time_limit,
                    shadow=d.shadow,
                    ignore_result=True,
                    producer=producer,
                )
                ids.append(result.id)
        return ids

    def revoke(self, task_ids: Sequence[str]) -> None:
        if task_ids:
            self.app.control.revoke(list(task_ids))

    def call(self, task: str, queue: str, kwargs: dict[str, Any]) -> str:
        return str(self.app.send_task(task, kwargs=kwargs, queue=queue, ignore_result=True).id)
