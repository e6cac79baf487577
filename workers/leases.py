"""Keeping the claims of running steps alive.

Each process that runs steps renews the lease of every unit it is executing, from one daemon
thread, a third of a lease period apart. A process that dies stops renewing: its leases expire
and any other worker's sweeper re-dispatches the work. Started lazily and per process id, so a
prefork child gets its own thread after the fork.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from orchestrator.engine.ports import Leases
from orchestrator.engine.unit import Unit

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews the leases of the units this process is running (an :class:`~orchestrator.engine.ports.LeaseHolder`).

    Args:
        leases: The store's leases.
        lease_seconds: Lease length; renewal happens every third of it.
    """

    def __init__(self, leases: Leases, lease_seconds: float) -> None:
        self.leases = leases
        self.lease_seconds = lease_seconds
        self._held: set[Unit] = set()
        self._lock = threading.Lock()
        self._pid = 0
        self._stop = threading.Event()

    @contextmanager
    def hold(self, unit: Unit) -> Iterator[None]:
        """Renew ``unit``'s lease while the block runs (the claim already set the first one)."""
        self._ensure_thread()
        with self._lock:
            self._held.add(unit)
        try:
            yield
        finally:
            with self._lock:
                self._held.discard(unit)

    def _ensure_thread(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._held = set()
            self._stop = threading.Event()
            threading.Thread(target=self._run, name="orchestrator-leases", daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            with self._lock:
                units = list(self._held)
            if not units:
                continue
            try:
                self.leases.renew(units, self.lease_seconds)
            except Exception:  # keep renewing: a blip must not end the thread
                log.exception("could not renew %d leases", len(units))

    def stop(self) -> None:
        self._stop.set()
