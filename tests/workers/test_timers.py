"""Cancelled timer entries leave the event loop's heap (``workers/timers.py``)."""

from __future__ import annotations

import heapq

from kombu.asynchronous.timer import Timer

from workers.timers import compact


def test_compact_drops_cancelled_entries_and_keeps_the_live_ones_in_order() -> None:
    timer = Timer()
    fired: list[int] = []
    entries = [timer.call_after(100 + i, fired.append, (i,)) for i in range(10)]
    for entry in entries[::2]:
        timer.cancel(entry)
    queue = timer._queue  # the list the timer's iterator holds
    assert compact(timer) == 5
    assert timer._queue is queue and len(queue) == 5
    assert [heapq.heappop(queue).entry.args[0] for _ in range(5)] == [1, 3, 5, 7, 9]
    assert compact(timer) == 0


def test_every_worker_runs_the_compactor() -> None:
    from workers.app import app
    from workers.timers import TimerCompactor

    assert TimerCompactor in app.steps["worker"]
