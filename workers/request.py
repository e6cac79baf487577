"""The worker-side request of the step task: hooks the main process runs for dead children.

When a prefork child dies mid-step, Celery requeues the message at once (``acks_late`` with
``reject_on_worker_lost``). The step's claim is still held by the dead child's lease, so the
redelivery would be dropped and the step would wait for the lease to expire. Releasing the lease
here, just before the requeue, lets the redelivered message take the step over immediately.
A hard time limit likewise kills the child: the attempt is then recorded as failed with a
``TimeoutError`` and retried or failed by the step's policy.

Both hooks run in the worker's main process and must never raise: an exception here would stop
Celery from requeueing the message (see the research notes in docs/design.md).
"""

from __future__ import annotations

import logging
from typing import Any

from billiard.einfo import ExceptionWithTraceback
from billiard.exceptions import WorkerLostError
from celery.worker.request import Request
from pydantic import ValidationError

from orchestrator.engine.unit import StepMessage
from orchestrator.errors import StepTimeout
from workers.runtime import runtime_of

log = logging.getLogger(__name__)


class StepRequest(Request):  # type: ignore[misc]
    """Request class of the step task (:data:`orchestrator.engine.unit.STEP_TASK`)."""

    def on_failure(self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False) -> None:
        exc = getattr(exc_info, "exception", None)
        if isinstance(exc, ExceptionWithTraceback):  # billiard wraps what it reports, the lost worker too
            exc = exc.exc
        if isinstance(exc, WorkerLostError):
            self._release_lease()
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)

    def on_timeout(self, soft: bool, timeout: float) -> None:
        super().on_timeout(soft, timeout)
        if not soft:
            self._hard_timeout(timeout)

    def _step_message(self) -> StepMessage | None:
        try:
            return StepMessage.model_validate(self.kwargs or {})
        except ValidationError:
            return None  # not a step message: nothing of ours to release or record

    def _release_lease(self) -> None:
        try:
            message = self._step_message()
            if message is not None:
                runtime_of(self.task.app).store.leases.release(message.unit)
        except Exception:
            log.exception("could not release the lease of %s; it will expire instead", self.id)

    def _hard_timeout(self, timeout: float) -> None:
        try:
            message = self._step_message()
            if message is not None:
                runner = runtime_of(self.task.app).runner
                plan = runner.store.runs.plan(message.plan_id)
                runner.failed(plan, message, self.id, StepTimeout(f"hard time limit of {timeout:g}s exceeded"))
        except Exception:
            log.exception("could not record the hard time limit of %s; its lease will expire instead", self.id)
