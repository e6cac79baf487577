"""Leases and the outbox in Redis: which units are alive, and re-dispatching those that are not.

A running unit's lease (``Keys.leases``) is renewed by the process running it; a unit marked
queued has an outbox entry (``Keys.outbox``) until a delivery claims it, so a message lost anywhere
between the publisher and the claim (a publisher that died, a worker killed holding messages it
had not started) is published again; a fanned-out step has a watchdog there, renewed by its
items' progress. Either one expiring means the work may be lost: :meth:`RedisLeases.recover`
decides what to do about it atomically (``lua/recover.lua``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import cast

from orchestrator.engine.records import now_iso
from orchestrator.engine.unit import StepMessage, Unit
from orchestrator.engine.verdicts import RecoverVerdict, Recovery
from orchestrator.store.connections import all_reachable, server_info
from orchestrator.store.scripts import Part
from orchestrator.store.transitions import MAX_RECOVERIES

MAX_REPUBLISH_WAIT = 3600.0
"""Longest wait before a queued unit whose message may be lost is published once more."""


@all_reachable
class RedisLeases(Part):
    """:class:`~orchestrator.engine.ports.Leases` on Redis."""

    def renew(self, units: Iterable[Unit], lease_seconds: float) -> None:
        """Extend the leases of running units; a unit that ended has no lease left to extend (XX)."""
        by_shard: dict[str, list[str]] = {}
        for unit in units:
            by_shard.setdefault(self.keys.shard(unit.run_id).leases(), []).append(str(unit))
        if not by_shard:
            return
        expiry = time.time() + lease_seconds
        pipe = self.redis.pipeline(transaction=False)
        for key, members in by_shard.items():
            pipe.zadd(key, dict.fromkeys(members, expiry), xx=True)
        pipe.execute()

    def release(self, unit: Unit) -> None:
        """Expire a running unit's lease now (its process died), so a redelivery may take it over."""
        self.redis.zadd(self.keys.shard(unit.run_id).leases(), {str(unit): 0}, xx=True)

    def take_sweep(self, owner: str, seconds: float) -> bool:
        """Take the sweep for ``seconds`` (one sweeper at a time does the work); False if another has it."""
        return bool(self.redis.set(self.keys.all_shards[0].sweeper_lock(), owner, nx=True, px=int(seconds * 1000)))

    def server_uptime(self) -> float:
        """Seconds since the Redis server started (a restart means no lease was renewed meanwhile); on a
        cluster, of the master that started last."""
        masters = server_info(self.redis, "server", masters_only=True)
        return min((float(node.get("uptime_in_seconds", 0)) for node in masters), default=0.0)

    def expired(self, now: float, limit: int) -> list[Unit]:
        """Units whose lease or outbox entry expired before ``now``: up to ``limit`` of each kind in
        each shard, so a backlog in one shard never hides another's."""
        pipe = self.redis.pipeline(transaction=False)
        for shard in self.keys.all_shards:
            for key in (shard.leases(), shard.outbox()):
                pipe.zrangebyscore(key, "-inf", now, start=0, num=limit)
        found = [member for batch in pipe.execute() for member in cast(list[str], batch)]
        return [Unit.parse(member) for member in dict.fromkeys(found)]

    def recover(self, unit: Unit, guard_seconds: float) -> Recovery:
        """Decide about a unit whose lease or outbox entry expired (see ``lua/recover.lua``)."""
        now = time.time()
        shard = self.keys.shard(unit.run_id)
        verdict, attempt, plan_id, task_id, deaths, epoch, items = (
            str(v)
            for v in self.scripts.recover(
                keys=[
                    self.keys.run(unit.run_id),
                    self.keys.unit(unit),
                    shard.leases(),
                    shard.outbox(),
                    self.keys.history(unit.run_id),
                ],
                args=[
                    str(unit),
                    now,
                    now + guard_seconds,
                    MAX_RECOVERIES,
                    "1" if unit.item is not None else "0",
                    guard_seconds,
                    MAX_REPUBLISH_WAIT,
                    now_iso(),
                    unit.step if unit.item is None else "",
                ],
            )
        )
        decided = RecoverVerdict(verdict)
        if decided is RecoverVerdict.NONE:
            return Recovery(decided)
        message = StepMessage.of(unit, plan_id, attempt=max(int(attempt), 1), epoch=int(epoch))
        return Recovery(decided, message, task_id, int(deaths), int(items))
