"""The log observer: one structured line per state change the engine makes, and one per dead letter.

Event names are ``run.*`` and ``step.*`` after the run's history (``run.submitted``,
``step.queued``, ``step.started``, ``step.retrying``, ``step.deferred``, ``step.recovered``,
``step.succeeded``, ``step.failed``, ``step.skipped``, ``run.cancelled``, ``run.retried``,
``run.finished``) and ``message.dead_lettered``. A line describes the unit that changed: its
``run_id``, ``workflow``, ``step``, ``item``, ``attempt``, ``task_id`` and ``worker`` are the
change's (a step that ends queues its dependents: the ``step.queued`` lines name those), never a
run's params or a step's output. Lines go through stdlib logging (logger ``orchestrator.events``),
so a process whose logging is not configured prints them the way it prints any warning.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from orchestrator.engine.observers import Change
from orchestrator.engine.records import EventKind, RunStatus
from orchestrator.observability.logs import FIELDS_ATTRIBUTE, STEP_FIELDS

log = logging.getLogger("orchestrator.events")

MESSAGE_CHARS = 500
"""An error message is cut to this many characters on a line (the run record keeps it whole)."""
RUN_EVENTS = frozenset({EventKind.SUBMITTED, EventKind.CANCELLED, EventKind.RETRIED, EventKind.FINISHED})
WARNING_EVENTS = frozenset({EventKind.RETRYING, EventKind.RECOVERED, EventKind.FAILED})
AGAIN = frozenset({EventKind.RETRYING, EventKind.DEFERRED, EventKind.RECOVERED})
"""Changes that publish their unit again: the ``queued`` right after them is part of them."""


def event_name(kind: EventKind) -> str:
    """``run.submitted``, ``step.started``: the line's ``event`` for a change of this kind."""
    return f"{'run' if kind in RUN_EVENTS else 'step'}.{kind.value}"


class LogObserver:
    """Logs each :class:`~orchestrator.engine.observers.Change` as one line at a level that says how it went.

    ``retrying``, ``recovered`` and ``failed`` (and a run that finished failed) are warnings; the
    rest are info. A unit published again by a retry, a deferral or a recovery is not logged a
    second time as ``step.queued``: the ``step.retrying`` (``deferred``, ``recovered``) line says
    so, with its delay (the publish is logged at debug as ``step.requeued``).
    """

    def __init__(self, logger: logging.Logger = log) -> None:
        self.log = logger
        self._last = threading.local()  # the change before, in this thread: the engine calls synchronously

    def __call__(self, change: Change) -> None:
        kind = change.kind
        unit = (change.run_id, change.step, change.item)
        last = getattr(self._last, "change", None)
        self._last.change = (kind, unit)
        name = event_name(kind)
        level = logging.WARNING if kind in WARNING_EVENTS else logging.INFO
        if kind is EventKind.QUEUED and last is not None and last[0] in AGAIN and last[1] == unit:
            name, level = "step.requeued", logging.DEBUG
        elif kind is EventKind.FINISHED and change.status == RunStatus.FAILED:
            level = logging.WARNING
        if self.log.isEnabledFor(level):
            self.log.log(level, name, extra={FIELDS_ATTRIBUTE: fields_of(change)})


def fields_of(change: Change) -> dict[str, Any]:
    """The fields of a change's line: its unit (all of :data:`STEP_FIELDS`, None where it has none) and the rest."""
    fields: dict[str, Any] = dict.fromkeys(STEP_FIELDS)
    fields.update(
        run_id=change.run_id,
        workflow=change.workflow,
        step=change.step,
        item=change.item,
        attempt=change.attempt,
        task_id=change.task_id,
        worker=change.worker,
    )
    if change.kind is EventKind.SUBMITTED:
        fields.update(trigger=change.trigger, started_by=change.started_by)
    elif change.kind in (EventKind.CANCELLED, EventKind.RETRIED):
        fields["by"] = change.started_by
    if change.kind is EventKind.FINISHED:
        fields["status"] = change.status
    if change.delay is not None:
        fields["delay"] = round(change.delay, 3)
    if change.error is not None:
        fields.update(error_type=change.error.type, error=change.error.message[:MESSAGE_CHARS])
    return fields


def dead_lettered(
    *, letter_id: str, reason: str, queue: str, task_id: str | None, task: str | None = None, error: str = ""
) -> None:
    """Log ``message.dead_lettered``: a message no worker can run was kept in the dead-letter queue.

    Args:
        letter_id: The dead letter's id (``orchestrator dead-letters`` shows and replays it).
        reason: ``undecodable``, ``unknown_task``, ``invalid_task``, ``unknown_message`` or ``invalid_message``.
        queue: The queue it came from.
        task_id: The task id of its headers, when it has one.
        task: The task name of its headers, when it has one.
        error: What was wrong with it.
    """
    fields = {
        "letter_id": letter_id,
        "reason": reason,
        "queue": queue,
        "task_id": task_id,
        "task": task,
        "error": error[:MESSAGE_CHARS],
    }
    log.error("message.dead_lettered", extra={FIELDS_ATTRIBUTE: fields})
