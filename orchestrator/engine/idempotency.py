"""Idempotency keys: a step's side effect performed once, whatever the deliveries and retries.

The key's record is taken before the task runs and holds its output afterwards; a later delivery
with the same key for the same task (a recovery, a retry, another run) returns the recorded
output without running the task. A key belongs to the execution that took it: an execution that
recovers a unit after its worker died takes the key over at once. While a live execution of
another unit holds the key, this one waits a moment, then hands its attempt back uncounted
(:class:`~orchestrator.errors.Deferred`) rather than holding a worker slot: it runs again later
and reuses the output.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from orchestrator.engine.durability import until_recorded
from orchestrator.engine.ports import SideEffects
from orchestrator.engine.unit import Unit
from orchestrator.engine.verdicts import KeyVerdict
from orchestrator.errors import Deferred

log = logging.getLogger(__name__)
POLL = 0.1
"""Seconds between two looks at a key another execution holds."""


class IdempotencyGuard:
    """Runs side effects under their idempotency keys.

    Args:
        records: Where keys and outputs are recorded.
        ttl: How long a key's record (and output) is kept.
        wait: How long to wait in process for another live execution holding the key.
        defer: Seconds before a deferred attempt runs again.
    """

    def __init__(self, records: SideEffects, *, ttl: float, wait: float, defer: float) -> None:
        self.records = records
        self.ttl = ttl
        self.wait = wait
        self.defer = defer

    def run(self, task: str, key: str, unit: Unit, task_id: str, perform: Callable[[], Any]) -> Any:
        """``perform()`` once per task and key: its output now, or the output an earlier execution recorded.

        Raises:
            Deferred: a live execution of another unit still holds the key after ``wait``.
        """
        deadline = time.monotonic() + self.wait
        while True:
            taken = self.records.begin(task, key, unit, task_id, self.ttl)
            if taken.verdict is KeyVerdict.DONE:
                log.info("idempotency key %r of %s already ran: reusing its output", key, task)
                return taken.output
            if taken.verdict is KeyVerdict.GO:
                break
            if time.monotonic() > deadline:
                raise Deferred(f"idempotency key {key!r} of {task} is held by another live execution", self.defer)
            time.sleep(POLL)
        try:
            output = perform()
        except BaseException:
            self.records.abandon(task, key)
            raise
        # The effect happened: its record must land, or a recovered execution would repeat it.
        until_recorded(lambda: self.records.end(task, key, task_id, output, self.ttl), f"the output of key {key!r}")
        return output
