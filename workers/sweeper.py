"""A worker bootstep that re-dispatches work whose lease expired (dead workers, lost publishes).

It runs on the worker's timer in the main process, which keeps ticking while every pool process
is busy. Every worker runs one; a short Redis lock makes one sweep at a time do the work, and the
claims make a double sweep harmless anyway.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import bootsteps

from workers.runtime import Runtime, runtime_of

log = logging.getLogger(__name__)


class Sweeper(bootsteps.StartStopStep):  # type: ignore[misc]
    """Calls :meth:`orchestrator.engine.coordinator.Coordinator.recover` every ``sweep_interval`` seconds."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.timer_ref: Any = None

    def start(self, worker: Any) -> None:
        runtime = runtime_of(worker.app)
        interval = runtime.settings.worker.sweep_interval
        self.timer_ref = worker.timer.call_repeatedly(interval, self.sweep, (runtime, interval), priority=10)

    def sweep(self, runtime: Runtime, interval: float) -> None:
        lock = runtime.keys.sweeper_lock()
        try:
            if not runtime.redis.set(lock, os.getpid(), nx=True, px=int(interval * 1000)):
                return
            count = runtime.coordinator.recover()
            if count:
                log.warning("sweeper re-dispatched %d units whose lease expired", count)
        except Exception:  # never let the timer die
            log.exception("lease sweep failed")

    def stop(self, worker: Any) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
