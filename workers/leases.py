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
import time
from collections.abc import Iterator
from contextlib import contextmanager

from redis import Redis

from orchestrator.store.keys import Keys

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews the leases of the units this process is running.

    Args:
        client: Redis client of the run store.
        keys: Key namespace.
        lease_seconds: Lease length; renewal happens every third of it.
    """

    def __init__(self, client: Redis, keys: Keys, lease_seconds: float) -> None:
        self.redis = client
        self.keys = keys
        self.lease_seconds = lease_seconds
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._pid = 0
        self._stop = threading.Event()

    @contextmanager
    def hold(self, member: str) -> Iterator[None]:
        """Renew ``member``'s lease while the block runs (the claim already set the first one)."""
        self._ensure_thread()
        with self._lock:
            self._held.add(member)
        try:
            yield
        finally:
            with self._lock:
                self._held.discard(member)

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
        interval = self.lease_seconds / 3
        while not self._stop.wait(interval):
            with self._lock:
                members = list(self._held)
            if not members:
                continue
            try:
                # XX: only renew what still exists; a unit that ended has no lease to extend.
                expiry = time.time() + self.lease_seconds
                self.redis.zadd(self.keys.leases(), dict.fromkeys(members, expiry), xx=True)
            except Exception:  # keep renewing: a blip must not end the thread
                log.exception("could not renew %d leases", len(members))

    def stop(self) -> None:
        self._stop.set()
