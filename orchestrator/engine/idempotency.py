"""Idempotency keys: a step's side effect performed once, whatever the deliveries and retries.

The key's record is taken before the task runs and holds its output afterwards; a later delivery
with the same key (a recovery, a retry, another run) returns the recorded output without running
the task. While another live execution holds the key, this one waits for it to end, then reuses
its output.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from orchestrator.engine.ports import SideEffects
from orchestrator.engine.unit import Unit
from orchestrator.engine.verdicts import KeyVerdict
from orchestrator.errors import IdempotencyKeyBusy

log = logging.getLogger(__name__)
POLL = 0.2
"""Seconds between two looks at a key another execution holds."""


class IdempotencyGuard:
    """Runs side effects under their idempotency keys.

    Args:
        records: Where keys and outputs are recorded.
        ttl: How long a key's record (and output) is kept.
        wait: How long to wait for another live execution holding the key.
    """

    def __init__(self, records: SideEffects, *, ttl: float, wait: float) -> None:
        self.records = records
        self.ttl = ttl
        self.wait = wait

    def run(self, key: str, unit: Unit, task_id: str, perform: Callable[[], Any]) -> Any:
        """``perform()`` once for ``key``: its output now, or the output recorded by an earlier execution.

        Raises:
            IdempotencyKeyBusy: another live execution kept the key for longer than ``wait``.
        """
        deadline = time.monotonic() + self.wait
        while True:
            taken = self.records.begin(key, unit, task_id, self.ttl)
            if taken.verdict is KeyVerdict.DONE:
                log.info("idempotency key %r already ran: reusing its output", key)
                return taken.output
            if taken.verdict is KeyVerdict.GO:
                break
            if time.monotonic() > deadline:
                raise IdempotencyKeyBusy(f"idempotency key {key!r} is held by another live execution; retrying later")
            time.sleep(POLL)
        try:
            output = perform()
        except BaseException:
            self.records.abandon(key)
            raise
        self.records.end(key, task_id, output, self.ttl)
        return output
