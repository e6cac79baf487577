"""What the engine tells its observers as runs change: logs, metrics and Sentry listen here.

The coordinator and the step runner call their observer once per state change they make (a run
submitted, a step queued, started, retrying, ended, a run cancelled, recovered, finished). The
engine imports none of the observers: the composition roots (``orchestrator/services.py``,
``workers/runtime.py``) hand it an :class:`Observers` holding them. An observer that raises is
logged and never fails the change it was told about.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.engine.records import EventKind, StepError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Change:
    """One state change, as the engine made it.

    Attributes:
        kind: What happened (the kinds of the run's history).
        run_id: The run.
        workflow: Its workflow.
        step: The step, for a step's change.
        item: The item index, for an item of a ``for_each`` step.
        attempt: The attempt, where one is under way.
        task_id: The Celery task id of the delivery that made it, when a delivery did.
        worker: The worker's hostname, for ``started``.
        trigger: How the run was started, for ``submitted``.
        started_by: Who started it, for ``submitted``; who cancelled or retried it, for those.
        status: The run's final status, for ``finished``.
        error: Why, for ``retrying``, ``deferred`` and ``failed``.
        cause: The exception behind ``error`` when it was raised in this process (never sent anywhere
            by the engine; Sentry reports it with its traceback).
        delay: Seconds until the next attempt (``retrying``, ``deferred``) or until a queued message is due.
        lag: For ``started``: seconds from its message being due (published, plus any countdown) to
            this start, when the message says when it was due.
        at: When it happened (epoch seconds).
    """

    kind: EventKind
    run_id: str
    workflow: str
    step: str | None = None
    item: int | None = None
    attempt: int | None = None
    task_id: str | None = None
    worker: str | None = None
    trigger: str | None = None
    started_by: str | None = None
    status: str | None = None
    error: StepError | None = None
    cause: BaseException | None = field(default=None, compare=False, repr=False)
    delay: float | None = None
    lag: float | None = None
    at: float = field(default_factory=time.time)


Observer = Callable[[Change], None]
"""Anything called with each :class:`Change`."""


class Observers:
    """The observers of one process, called in the order they were added.

    Args:
        observers: The first ones; :meth:`add` more.
    """

    def __init__(self, *observers: Observer) -> None:
        self.observers: list[Observer] = list(observers)

    def add(self, observer: Observer) -> None:
        self.observers.append(observer)

    def __call__(self, change: Change) -> None:
        for observer in self.observers:
            try:
                observer(change)
            except Exception:  # an observer must never fail the engine's change
                log.exception("observer %r failed on %s of run %s", observer, change.kind, change.run_id)

    def __bool__(self) -> bool:
        return bool(self.observers)
