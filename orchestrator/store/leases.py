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
from orchestrator.store.connections import all_reachable
from orchestrator.store.scripts import Part
from orchestrator.store.transitions import MAX_RECOVERIES

MAX_REPUBLISH_WAIT = 3600.0
"""Longest wait before a queued unit whose message may be lost is published once more."""


@all_reachable
class RedisLeases(Part):
    """:class:`~orchestrator.engine.ports.Leases` on Redis."""

    def renew(self, units: Iterable[Unit], lease_seconds: float) -> None:
        """Extend the leases of running units; a unit that ended has no lease left to extend (XX)."""
        members = [str(u) for u in units]
        if members:
            self.redis.zadd(self.keys.leases(), dict.fromkeys(members, time.time() + lease_seconds), xx=True)

    def release(self, unit: Unit) -> None:
        """Expire a running unit's lease now (its process died), so a redelivery may take it over."""
        self.redis.zadd(self.keys.leases(), {str(unit): 0}, xx=True)

    def take_sweep(self, owner: str, seconds: float) -> bool:
        """Take the sweep for ``seconds`` (one sweeper at a time does the work); False if another has it."""
        return bool(self.redis.set(self.keys.sweeper_lock(), owner, nx=True, px=int(seconds * 1000)))

    def server_uptime(self) -> float:
        """Seconds since the Redis server started (a restart means no lease was renewed meanwhile)."""
        return float(self.redis.info("server").get("uptime_in_seconds", 0))

    def expired(self, now: float, limit: int) -> list[Unit]:
        """Units whose lease or outbox entry expired before ``now``."""
        found: list[str] = []
        for key in (self.keys.leases(), self.keys.outbox()):
            found += cast(list[str], self.redis.zrangebyscore(key, "-inf", now, start=0, num=limit))
        return [Unit.parse(member) for member in dict.fromkeys(found)]

    def recover(self, unit: Unit, guard_seconds: float) -> Recovery:
        """Decide about a unit whose lease or outbox entry expired (see ``lua/recover.lua``)."""
        now = time.time()
        verdict, attempt, plan_id, task_id, deaths, epoch, items = (
            str(v)
            for v in self.scripts.recover(
                keys=[
                    self.keys.run(unit.run_id),
                    self.keys.unit(unit),
                    self.keys.leases(),
                    self.keys.outbox(),
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
