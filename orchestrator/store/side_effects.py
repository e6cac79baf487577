"""Idempotency records in Redis: who performs a side effect, and its output once it happened.

A key is scoped by the task it guards: the same key given to two different tasks names two side
effects, so one task never receives another's output.
"""

from __future__ import annotations

import json
import time
from typing import Any

from orchestrator.engine.unit import Unit
from orchestrator.engine.verdicts import KeyVerdict, SideEffect
from orchestrator.store.connections import all_reachable
from orchestrator.store.scripts import Part


@all_reachable
class RedisSideEffects(Part):
    """:class:`~orchestrator.engine.ports.SideEffects` on Redis."""

    def begin(self, task: str, key: str, unit: Unit, task_id: str, ttl: float) -> SideEffect:
        """Take task ``task``'s idempotency key (``lua/idempotency.lua``): go, done (with the output) or busy."""
        verdict, output = self.scripts.idempotency(
            keys=[self.keys.idempotency(task, key), self.keys.leases()],
            args=[str(unit), self.keys.unit(unit), task_id, time.time(), int(ttl)],
        )
        taken = KeyVerdict(verdict)
        return SideEffect(taken, json.loads(output) if taken is KeyVerdict.DONE else None)

    def end(self, task: str, key: str, task_id: str, output: Any, ttl: float) -> None:
        """Record the output of a side effect that ran, so later deliveries reuse it."""
        record = self.keys.idempotency(task, key)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(record, mapping={"state": KeyVerdict.DONE.value, "task_id": task_id, "output": json.dumps(output)})
        pipe.expire(record, int(ttl))
        pipe.execute()

    def abandon(self, task: str, key: str) -> None:
        """The side effect failed: free the key so a retry may run it."""
        self.redis.delete(self.keys.idempotency(task, key))
