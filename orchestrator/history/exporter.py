"""The exporter: moves finished runs from the hot store's archive queue to the history, a batch at a time.

Order makes a kill safe anywhere: read a batch of queued runs (oldest first), read each run
whole, write them all in one transaction, and only then dequeue them. Killed before the commit,
nothing was written and the runs are still queued; killed after it, they are written again on
the next start, a no-op by the primary key. A lock in Redis lets one exporter work at a time
(several running is still safe, only wasteful). It runs on the coordinator side, never in a
step's path: in ``orchestrator api`` (a background thread) or ``orchestrator history export``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.engine.ports import Archive, ArchivedRun, HistoryWriter
from orchestrator.errors import ServiceUnavailable

log = logging.getLogger(__name__)

LONGEST_PAUSE = 30.0
"""Seconds the exporter waits at most between tries while the history or Redis is down."""
RETRY_AFTER = 300.0
"""Seconds a run the history refused waits at the back of the queue before it is tried again."""


@dataclass(frozen=True)
class Batch:
    """What one batch did.

    Attributes:
        read: Runs taken from the queue.
        written: Runs new to the history (the others were there already: a rewrite).
        gone: Queued runs whose keys had gone (nothing to write); dequeued.
        unfinished: Queued runs retried since they ended; dequeued (their next end queues them again).
        deferred: Runs the history refused (logged); moved to the back of the queue.
    """

    read: int = 0
    written: int = 0
    gone: int = 0
    unfinished: int = 0
    deferred: int = 0


class Exporter:
    """Writes what the archive queue holds to the history.

    Args:
        archive: The hot store's queue of finished runs.
        writer: The history.
        batch_size: Runs per transaction.
        lock_seconds: How long the exporter's lock lives without renewal (renewed every batch).
        owner: Who holds the lock (default: host, pid and a random part).
    """

    def __init__(
        self,
        archive: Archive,
        writer: HistoryWriter,
        *,
        batch_size: int = 200,
        lock_seconds: float = 60.0,
        owner: str | None = None,
    ) -> None:
        self.archive = archive
        self.writer = writer
        self.batch_size = batch_size
        self.lock_seconds = lock_seconds
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def export_batch(self) -> Batch:
        """Export the oldest queued runs, up to a batch.

        Raises:
            ServiceUnavailable: Redis or the history cannot be reached (the runs stay queued).
        """
        pending = self.archive.pending(self.batch_size)
        if not pending:
            return Batch()
        found = self.archive.read([run_id for run_id, _ in pending])
        gone = [run_id for run_id, _ in pending if run_id not in found]
        for run_id in gone:
            log.warning("run %s left the hot store before it was exported: the history does not have it", run_id)
        unfinished = [r for r, _ in pending if r in found and not found[r].record.status.finished]
        ready = [found[r] for r, _ in pending if r in found and found[r].record.status.finished]
        written, refused = self._write(ready)
        for run_id in refused:
            self.archive.defer(run_id, RETRY_AFTER)
        self.archive.done([(run_id, score) for run_id, score in pending if run_id not in refused])
        return Batch(len(pending), written, len(gone), len(unfinished), len(refused))

    def _write(self, runs: Sequence[ArchivedRun]) -> tuple[int, set[str]]:
        """Write a batch; if the history refuses it, each run alone, to set the ones it refuses aside."""
        if not runs:
            return 0, set()
        try:
            return self.writer.write(runs), set()
        except ServiceUnavailable:
            raise
        except Exception:
            if len(runs) == 1:
                run_id = runs[0].record.run_id
                log.exception("the history refused run %s; trying it again in %gs", run_id, RETRY_AFTER)
                return 0, {run_id}
        written, refused = 0, set[str]()
        for run in runs:
            count, failed = self._write([run])
            written, refused = written + count, refused | failed
        return written, refused

    def drain(self, stop: threading.Event | None = None) -> Batch:
        """Export batches until the queue is empty (or another exporter takes the lock); the totals.

        Raises:
            ServiceUnavailable: Redis or the history cannot be reached.
        """
        total = Batch()
        while stop is None or not stop.is_set():
            if not self.archive.hold(self.owner, self.lock_seconds):
                break
            batch = self.export_batch()
            total = Batch(*(a + b for a, b in zip(_fields(total), _fields(batch), strict=True)))
            if batch.read < self.batch_size or batch.read == batch.deferred:
                break
        return total

    def run(self, stop: threading.Event, interval: float) -> None:
        """Export until ``stop`` is set: drain, then wait ``interval``; while a service is down, back off."""
        pause = interval
        try:
            while not stop.is_set():
                try:
                    batch = self.drain(stop)
                    if batch.written:
                        log.info("exported %d finished runs to the history", batch.written)
                    pause = interval
                except ServiceUnavailable as exc:
                    log.warning("history export paused: %s; trying again in %gs", exc, pause)
                    pause = min(pause * 2, LONGEST_PAUSE)
                    stop.wait(pause)
                    continue
                except Exception:  # the loop must outlive any one batch
                    log.exception("history export failed; trying again in %gs", pause)
                    pause = min(pause * 2, LONGEST_PAUSE)
                    stop.wait(pause)
                    continue
                stop.wait(interval)
        finally:
            try:
                self.archive.release(self.owner)
            except Exception:
                log.debug("could not release the history exporter's lock", exc_info=True)


def _fields(batch: Batch) -> tuple[int, ...]:
    return (batch.read, batch.written, batch.gone, batch.unfinished, batch.deferred)


class Background:
    """An exporter in a daemon thread of this process (the API's): :meth:`start`, then :meth:`stop`."""

    def __init__(self, exporter: Exporter, interval: float) -> None:
        self.exporter = exporter
        self.interval = interval
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="history-exporter", daemon=True)

    def start(self) -> Background:
        self.thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout)

    def _run(self) -> None:
        self.exporter.run(self.stopping, self.interval)
