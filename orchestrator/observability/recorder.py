"""The metrics observer: turns the engine's :class:`~orchestrator.engine.observers.Change` s into counters.

One instance per process, added to that process's ``Observers`` (``Runtime.observers`` on a worker,
``Services.observers`` in the API). A step's ``started`` and its end happen in the same process (the
runner ends the step itself), so the duration of an attempt is measured here, from the two
changes' times. Starts whose end this process never sees (a ``for_each`` step's own start, whose
last item may end elsewhere; a worker killed mid-step) are forgotten, oldest first, past a bound.
"""

from __future__ import annotations

from collections import OrderedDict

from orchestrator.engine.observers import Change
from orchestrator.engine.records import EventKind
from orchestrator.observability import metrics

MAX_OPEN = 10_000
"""Attempts remembered as started and not ended; beyond it the oldest are dropped."""
_ENDS = {EventKind.SUCCEEDED: "succeeded", EventKind.FAILED: "failed", EventKind.RETRYING: "retrying"}


class MetricsRecorder:
    """An :data:`~orchestrator.engine.observers.Observer` that records runs, steps and dispatch lag."""

    def __init__(self, max_open: int = MAX_OPEN) -> None:
        self.max_open = max_open
        self._started: OrderedDict[tuple[str, str, int | None], float] = OrderedDict()

    def __call__(self, change: Change) -> None:
        kind = change.kind
        if kind is EventKind.SUBMITTED:
            metrics.RUNS_STARTED.labels(change.workflow, change.trigger or "unknown").inc()
        elif kind is EventKind.FINISHED:
            metrics.RUNS_FINISHED.labels(change.workflow, change.status or "unknown").inc()
        elif kind is EventKind.CANCELLED:
            metrics.RUNS_CANCELLED.labels(change.workflow).inc()
        elif change.step is None:
            return
        elif kind is EventKind.STARTED:
            self._start(change)
        elif kind in _ENDS:
            self._end(change, _ENDS[kind])
            if kind is EventKind.RETRYING:
                metrics.STEP_RETRIES.labels(change.workflow, change.step).inc()
        elif kind is EventKind.RECOVERED:
            metrics.STEP_RECOVERIES.labels(change.workflow, change.step).inc()
        elif kind in (EventKind.DEFERRED, EventKind.SKIPPED):
            self._started.pop((change.run_id, change.step, change.item), None)

    def _start(self, change: Change) -> None:
        assert change.step is not None
        self._started[(change.run_id, change.step, change.item)] = change.at
        while len(self._started) > self.max_open:
            self._started.popitem(last=False)
        if change.lag is not None:
            metrics.DISPATCH_LAG.labels(change.workflow).observe(max(change.lag, 0.0))

    def _end(self, change: Change, status: str) -> None:
        assert change.step is not None
        started = self._started.pop((change.run_id, change.step, change.item), None)
        if started is not None:
            metrics.STEP_DURATION.labels(change.workflow, change.step, status).observe(max(change.at - started, 0.0))
