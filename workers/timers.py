"""Cancelled timers leave the event loop's heap, so the worker's main process stays bounded.

Celery's prefork pool puts a timer on the worker's event loop for every task with a time limit
(``asynpool._on_timeout_set``: the soft limit, and every step has one: its ``timeout``, 3600 s
unless the workflow says otherwise) and cancels it when the task ends. kombu's ``Timer.cancel``
only marks the entry; it stays in the timer's heap until its deadline has passed, an hour later.
So the main process holds one dead entry, about 0.6 KB, per task of the last hour: at 1,000 steps
a second, 3.6 million entries, about 2 GB (found with tracemalloc in ``bench.fanout`` at 100,000
items: every one of the 30,000 growing allocations of a 30,000-item round came from that call).
A plain Celery task without a time limit schedules no timer and is not affected.

:class:`TimerCompactor` removes the cancelled entries every :data:`COMPACT_INTERVAL` seconds:
one pass over the heap, rebuilt in place (the timer's iterator holds the list itself, as
``Timer.clear`` knows), on the event loop's own thread, so nothing runs beside it.
"""

from __future__ import annotations

import heapq
import logging
from typing import Any

from celery import bootsteps
from kombu.asynchronous.timer import Timer

log = logging.getLogger(__name__)

COMPACT_INTERVAL = 30.0
"""Seconds between two passes: the heap holds at most this long's worth of cancelled entries."""


def compact(timer: Timer) -> int:
    """Drop the cancelled entries from ``timer``'s heap; how many it dropped."""
    queue = timer._queue
    live = [scheduled for scheduled in queue if not scheduled.entry.canceled]
    dropped = len(queue) - len(live)
    if dropped:
        heapq.heapify(live)
        queue[:] = live
    return dropped


class TimerCompactor(bootsteps.StartStopStep):  # type: ignore[misc]
    """Calls :func:`compact` on the worker's event-loop timer every :data:`COMPACT_INTERVAL` seconds."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.timer_ref: Any = None

    def start(self, worker: Any) -> None:
        timer = worker.timer
        if isinstance(timer, Timer):  # the event loop's; a threaded timer (no event loop) is another class
            self.timer_ref = timer.call_repeatedly(  # type: ignore[no-untyped-call]
                COMPACT_INTERVAL, compact, (timer,), priority=10
            )

    def stop(self, worker: Any) -> None:
        if self.timer_ref is not None:
            self.timer_ref.cancel()
            self.timer_ref = None
