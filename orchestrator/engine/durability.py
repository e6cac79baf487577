"""Recording what already happened: retried through a store outage instead of given up.

Once a step's task has run, its side effect exists; the record of it (the idempotency key's
output, the step's outcome) must reach the store, or a recovered execution would perform the
effect again. So such writes are retried while the store is unreachable, with a growing pause,
and the execution keeps its claim meanwhile (its lease is renewed from another thread, and
sweepers judge no lease until Redis has been back for a whole lease).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from orchestrator.errors import ServiceUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")
FIRST_PAUSE = 0.2
LONGEST_PAUSE = 5.0


def until_recorded(write: Callable[[], T], what: str) -> T:
    """``write()``, again and again while the store is unreachable, until it succeeds."""
    pause = FIRST_PAUSE
    while True:
        try:
            return write()
        except ServiceUnavailable as exc:
            log.warning("could not record %s (%s); trying again in %.1fs", what, exc, pause)
            time.sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE)
