"""Progress and memory sampled while a benchmark runs: how many items are done, and what that costs.

A :class:`Progress` thread polls a count (items done) every ``poll`` seconds. Each time the count
passes a milestone (every ``every`` items) it records a :class:`Mark`: when, Redis's
``used_memory`` (``INFO memory``), the worker node's memory (:func:`bench.processes.memory` of its
process tree) and this process's. It also keeps the highest ``used_memory`` it saw, polled on the
same cadence. The time between two marks is the time those ``every`` items took: equal gaps mean a
per-item cost that does not grow with the number of items already done.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from redis import Redis
from rich.console import Console

from bench.processes import Worker, memory

MB = 1024 * 1024


@dataclass(frozen=True)
class Mark:
    """The state when ``done`` items had ended (the first poll at or past that many).

    Attributes:
        done: The milestone (a multiple of ``every``; 0 is the start).
        seconds: Since the start of the dispatch.
        used_memory: Redis ``used_memory`` (bytes, the whole server).
        worker_rss: The worker node's resident set (main and pool processes, summed).
        worker_pss: Its proportional set size (shared pages split): its real share of RAM.
        driver_rss: This process's resident set (the one dispatching, and for ``group``, joining).
    """

    done: int
    seconds: float
    used_memory: int
    worker_rss: int
    worker_pss: int
    driver_rss: int


@dataclass
class Progress:
    """Samples ``count()`` and memory in a daemon thread between :meth:`start` and :meth:`stop`.

    Args:
        redis: A client of the benchmark's Redis server (its own connection: this runs in a thread).
        count: Items done so far.
        total: Items in all.
        every: Items between two marks.
        worker: The node running the items.
        label: Prefix of the lines printed at each mark (None: print nothing).
        out: Where those lines go.
        poll: Seconds between two polls.
    """

    redis: Redis
    count: Callable[[], int]
    total: int
    every: int
    worker: Worker
    label: str | None = None
    out: Console | None = None
    poll: float = 0.1
    marks: list[Mark] = field(default_factory=list)
    polls: list[tuple[float, int]] = field(default_factory=list)
    """Every poll: (seconds since the start, count)."""
    peak_used_memory: int = 0
    _started: float = 0.0
    _following: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self, started: float) -> Progress:
        """Mark 0 now and sample from here; ``started`` is the epoch second the dispatch begins."""
        self._started = started
        self.marks = [self._mark(0, 0)]
        self._thread = threading.Thread(target=self._run, name="bench-progress", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Mark]:
        """Stop sampling, after one last poll (the end may have come between two)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._sample()
        return self.marks

    def reached(self, count: int) -> float | None:
        """Seconds from the start to the first poll that counted at least ``count`` (None: none did)."""
        return next((at for at, done in self.polls if done >= count), None)

    def _run(self) -> None:
        self._following = self.every
        while not self._stop.wait(self.poll) and self._sample():
            pass

    def _sample(self) -> bool:
        """Poll once, recording the marks passed; False once the last one is recorded."""
        done = self.count()
        self.polls.append((time.time() - self._started, done))
        used = int(self.redis.info("memory")["used_memory"])
        self.peak_used_memory = max(self.peak_used_memory, used)
        while self._following <= min(done, self.total):
            self._record(self._following, used)
            self._following += self.every
        return self._following <= self.total

    def _record(self, done: int, used: int) -> None:
        mark = self._mark(done, used)
        self.marks.append(mark)
        if self.label and self.out:
            before = self.marks[-2]
            self.out.print(
                f"{self.label}: {done:>9,} done at {mark.seconds:7.1f} s (+{mark.seconds - before.seconds:6.1f} s); "
                f"Redis used_memory {mark.used_memory / MB:7.1f} MB; worker RSS {mark.worker_rss / MB:6.0f} MB, "
                f"PSS {mark.worker_pss / MB:6.0f} MB; driver RSS {mark.driver_rss / MB:5.0f} MB"
            )

    def _mark(self, done: int, used: int) -> Mark:
        if not used:
            used = int(self.redis.info("memory")["used_memory"])
            self.peak_used_memory = max(self.peak_used_memory, used)
        node = self.worker.memory()
        driver = memory_of_self()
        return Mark(done, time.time() - self._started, used, node.rss, node.pss, driver)


def memory_of_self() -> int:
    """This process's resident set (bytes), without its children (the Redis server, the workers)."""
    return memory(os.getpid(), tree=False).rss


def gaps(marks: list[Mark]) -> list[float]:
    """Seconds each ``every`` items took: the differences between successive marks."""
    return [b.seconds - a.seconds for a, b in zip(marks, marks[1:], strict=False)]


def summary(marks: list[Mark]) -> dict[str, Any]:
    """The marks as JSON-ready rows."""
    return {"marks": [asdict(m) for m in marks], "gaps": gaps(marks)}
