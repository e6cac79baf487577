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

from orchestrator.store.redis_store import Unit

log = logging.getLogger(__name__)


class StepRequest(Request):  # type: ignore[misc]
    """Request class of :data:`orchestrator.engine.unit.STEP_TASK`."""

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

    def _unit(self) -> tuple[str, str, int | None] | None:
        kwargs = self.kwargs or {}
        if "run_id" not in kwargs or "step" not in kwargs:
            return None
        return kwargs["run_id"], kwargs["step"], kwargs.get("item")

    def _release_lease(self) -> None:
        try:
            unit = self._unit()
            if unit is not None:
                self.task.runtime.store.release_lease(Unit(*unit))
        except Exception:
            log.exception("could not release the lease of %s; it will expire instead", self.id)

    def _hard_timeout(self, timeout: float) -> None:
        try:
            kwargs = self.kwargs or {}
            if "run_id" in kwargs:
                self.task.runtime.hard_timeout(kwargs, self.id, timeout)
        except Exception:
            log.exception("could not record the hard time limit of %s; its lease will expire instead", self.id)
