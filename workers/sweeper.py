"""A worker bootstep that re-dispatches work whose lease expired (dead workers, lost publishes).

It runs on the worker's timer in the main process, which keeps ticking while every pool process
is busy. Every worker runs one; a short Redis lock makes one sweep at a time do the work, and the
claims make a double sweep harmless anyway.

An expired lease means a dead execution only if the execution could renew it: while Redis was
down (restarted, or unreachable from this worker), no lease was renewed, and the executions that
are alive renew theirs within a third of a lease once it is back. So the sweeper judges nothing
until Redis has been up, and reachable from this worker, for a whole lease; recovering at once
would run every step that was in flight a second time, its side effect too.

The same sweep, under the same lock, runs retention's janitor: the finished runs whose retention is
over lose their keys, a bounded batch per sweep (:mod:`orchestrator.store.retention`).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from celery import bootsteps

from workers.runtime import Runtime, runtime_of

log = logging.getLogger(__name__)


class Sweeper(bootsteps.StartStopStep):  # type: ignore[misc]
    """Calls :meth:`orchestrator.engine.coordinator.Coordinator.recover` and the retention janitor
    (:meth:`orchestrator.store.retention.RedisRetention.sweep`) every ``sweep_interval`` seconds."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.timer_ref: Any = None
        self.quiet_until = 0.0

    def start(self, worker: Any) -> None:
        runtime = runtime_of(worker.app)
        interval = runtime.settings.worker.sweep_interval
        self.timer_ref = worker.timer.call_repeatedly(interval, self.sweep, (runtime, interval), priority=10)

    def sweep(self, runtime: Runtime, interval: float) -> None:
        lease = runtime.settings.worker.lease
        leases = runtime.store.leases
        try:
            if time.monotonic() < self.quiet_until or not leases.take_sweep(f"{os.getpid()}", interval):
                return
            self.expire(runtime)
            if leases.server_uptime() < lease:
                return  # restarted within a lease: live executions may not have renewed yet
            count = runtime.coordinator.recover()
            if count:
                log.warning("sweeper re-dispatched %d units whose lease expired", count)
        except Exception:  # never let the timer die
            self.quiet_until = time.monotonic() + lease
            log.exception("lease sweep failed; judging no lease for %gs after Redis is back", lease)

    def expire(self, runtime: Runtime) -> None:
        """Remove finished runs whose retention is over; a failure here never stops the lease sweep."""
        try:
            swept = runtime.store.retention.sweep()
        except Exception:
            log.exception("retention sweep failed; the runs it had due are removed by a later sweep")
            return
        if swept.removed or swept.postponed:
            log.info(
                "retention removed %d finished runs (%d keys); %d due wait for the history export",
                swept.removed,
                swept.keys,
                swept.postponed,
            )

    def stop(self, worker: Any) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
