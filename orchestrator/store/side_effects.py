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
        """Take task ``task``'s idempotency key (``lua/idempotency.lua``): go, done (with the output) or busy.

        A key held by another execution is taken over only when that execution is dead: its unit no
        longer runs it, or its lease expired. That is read in the owner's run (its own slot on a
        cluster), then the key is taken if the same dead execution still holds it.
        """
        record = self.keys.idempotency(task, key)
        args: list[str | int] = [str(unit), self.keys.unit(unit), task_id, int(ttl)]
        answer = [str(a) for a in self.scripts.idempotency(keys=[record], args=[*args, ""])]
        if answer[0] == "check":
            owner, owner_key, owner_task = answer[1:]
            if self._alive(owner, owner_key, owner_task):
                return SideEffect(KeyVerdict.BUSY, None)
            answer = [str(a) for a in self.scripts.idempotency(keys=[record], args=[*args, owner_task])]
            if answer[0] == "check":  # another execution took it meanwhile: it is alive
                return SideEffect(KeyVerdict.BUSY, None)
        taken = KeyVerdict(answer[0])
        return SideEffect(taken, json.loads(answer[1]) if taken is KeyVerdict.DONE else None)

    def _alive(self, owner: str, owner_key: str, owner_task: str) -> bool:
        """Whether execution ``owner_task`` still runs unit ``owner`` (hash ``owner_key``) under a live lease."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(owner_key, ["status", "task_id"])
        pipe.zscore(self.keys.shard(Unit.parse(owner).run_id).leases(), owner)
        (status, running_task), expiry = pipe.execute()
        return status == "running" and running_task == owner_task and expiry is not None and expiry > time.time()

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
