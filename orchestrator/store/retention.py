"""Retention: once a finished run's retention is over, the janitor removes every key of it from Redis.

The run-ending scripts (``lua/complete.lua``, ``lua/cancel.lua``, through ``run_ended`` of
``lua/lib.lua``) put a run in :meth:`~orchestrator.store.keys.Keys.expiring`, scored by when its
retention ends (its hash's ``retention``: the workflow's ``retention:`` or ``ORCH_RUN_RETENTION``);
a retry takes it out again. Every worker's sweeper calls :meth:`RedisRetention.sweep`; a pass
looks at no more than :data:`BATCH` runs that are due, so its cost follows the runs it removes,
never the runs kept. Removing a run:

1. A run with a step whose lease is alive (cancelled while the step ran: its execution may still
   write, a fan-out's inputs for one) is postponed by :data:`POSTPONE`. Then ``lua/expire.lua``
   takes the others, atomically: one still waiting for the durable history
   (:meth:`~orchestrator.store.keys.Keys.archiving`) is postponed too; otherwise its hash is
   renamed to :meth:`~orchestrator.store.keys.Keys.removal`, so the run reads as gone from then on
   (a retry, a status read, a late claim find no run), and it leaves the runs index.
2. Its keys are derived from its plan and the layout of :mod:`~orchestrator.store.keys`, never by
   SCAN, and UNLINKed in pipelined batches: the items of each step first (as many as the step's
   ``items`` or its inputs' length say, so the step's hash is still there to say it should the
   janitor stop), then each step's hash, output, item outputs, join and inputs, and the history;
   with its members of the leases and the outbox.
3. It leaves its workflow's index, the removal hash goes, and last it leaves ``expiring``.

A janitor killed anywhere leaves the run in ``expiring`` and still due: the next pass takes it
again (from its removal hash) and deletes what is left. Two janitors on one run delete the same
keys twice, which is harmless.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Any, cast

from redis import Redis
from redis.client import Pipeline

from orchestrator.engine.unit import Unit
from orchestrator.errors import PlanNotFound
from orchestrator.store.connections import all_reachable
from orchestrator.store.keys import Keys
from orchestrator.store.runs import RunsPart
from orchestrator.store.scripts import loaded, queue

log = logging.getLogger(__name__)

BATCH = 500
"""Due runs one pass of the janitor looks at, at most."""
POSTPONE = 60.0
"""Seconds before a due run that still waits for the durable history is looked at again."""
KEYS_PER_COMMAND = 500
"""Keys (or set members) one UNLINK or ZREM names."""
COMMANDS_PER_ROUND_TRIP = 50
"""Commands sent at a time while deleting: a run of 100,000 items is not one huge pipeline."""


@dataclass(frozen=True)
class Swept:
    """What one pass of the janitor did.

    Attributes:
        removed: Runs whose keys it removed.
        postponed: Due runs it left for later: waiting for the durable history, or with a step still running.
        keys: Keys it deleted.
    """

    removed: int = 0
    postponed: int = 0
    keys: int = 0


@all_reachable
class RedisRetention(RunsPart):
    """The janitor of finished runs on Redis."""

    def due(self, now: float, limit: int) -> list[str]:
        """Up to ``limit`` finished runs whose retention ended before ``now``, the longest due first (of all shards)."""
        pipe = self.redis.pipeline(transaction=False)
        for shard in self.keys.all_shards:
            pipe.zrangebyscore(shard.expiring(), "-inf", now, start=0, num=limit, withscores=True)
        found = cast(list[list[tuple[str, float]]], pipe.execute())
        return [str(run_id) for run_id, _ in islice(heapq.merge(*found, key=lambda entry: entry[1]), limit)]

    def sweep(self, now: float | None = None, *, limit: int = BATCH, postpone: float = POSTPONE) -> Swept:
        """Remove up to ``limit`` runs that are due (see the module's docstring); safe to run anywhere, any time.

        Args:
            now: The moment to judge by (epoch s); default the clock.
            limit: Due runs looked at in this pass.
            postpone: Seconds before a run that cannot go yet is looked at again.
        """
        now = time.time() if now is None else now
        run_ids = self.due(now, limit)
        if not run_ids:
            return Swept()
        running = self._running(run_ids, now)
        free = [run_id for run_id in run_ids if run_id not in running]

        def execute() -> list[Any]:
            pipe = self.redis.pipeline(transaction=False)
            for run_id in running:
                pipe.zadd(self.keys.shard(run_id).expiring(), {run_id: now + postpone}, xx=True)
            for run_id in free:
                shard = self.keys.shard(run_id)
                keys = [
                    self.keys.run(run_id),
                    self.keys.removal(run_id),
                    shard.expiring(),
                    shard.archiving(),
                    shard.runs(),
                ]
                queue(pipe, self.scripts.expire, keys, [run_id, now, now + postpone])
            return pipe.execute()

        taken: dict[str, tuple[str, str]] = {}
        postponed = len(running)
        for run_id, (verdict, workflow, plan_id) in zip(
            free, loaded(self.redis, execute, self.scripts.expire)[len(running) :], strict=True
        ):
            if verdict == "taken":
                taken[run_id] = (str(workflow), str(plan_id))
            postponed += verdict == "postponed"
        return Swept(len(taken), postponed, self._remove(taken) if taken else 0)

    def _running(self, run_ids: Sequence[str], now: float) -> set[str]:
        """The runs among these with a step whose lease is still alive: cancelled while the step ran, whose
        execution may still write (a fan-out's inputs); they wait for it. A finished run takes no new
        lease (its claims are refused), so none appears once this found none."""
        pipe = self.redis.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.hget(self.keys.run(run_id), "plan_id")
        members = {
            run_id: [str(Unit(run_id, name)) for name in self._steps(run_id, str(plan_id))]
            for run_id, plan_id in zip(run_ids, pipe.execute(), strict=True)
            if plan_id is not None
        }
        by_shard: dict[str, list[str]] = {}
        for run_id, found in members.items():
            by_shard.setdefault(self.keys.shard(run_id).leases(), []).extend(found)
        wanted = {key: found for key, found in by_shard.items() if found}
        if not wanted:
            return set()
        pipe = self.redis.pipeline(transaction=False)
        for key, found in wanted.items():
            pipe.zmscore(key, found)
        expiries = {
            m: e
            for found, got in zip(wanted.values(), pipe.execute(), strict=True)
            for m, e in zip(found, got, strict=True)
        }
        return {run_id for run_id, found in members.items() if any((expiries[m] or 0) > now for m in found)}

    def _remove(self, taken: dict[str, tuple[str, str]]) -> int:
        """Delete every key of the taken runs, items first, the runs' own entries last; the keys deleted."""
        steps = [(run_id, name) for run_id, (_, plan_id) in taken.items() for name in self._steps(run_id, plan_id)]
        pipe = self.redis.pipeline(transaction=False)
        for run_id, name in steps:
            pipe.hget(self.keys.step(run_id, name), "items")
            pipe.llen(self.keys.item_inputs(run_id, name))
        counts = pipe.execute()
        deletion = _Deletion(self.redis, self.keys)
        for (run_id, name), items, inputs in zip(steps, counts[::2], counts[1::2], strict=True):
            count = max(int(items or 0), int(inputs))
            deletion.unlink(self.keys.item(run_id, name, i) for i in range(count))
            deletion.forget(run_id, (str(Unit(run_id, name, i)) for i in range(count)))
        for run_id, name in steps:
            deletion.unlink(
                [
                    self.keys.step(run_id, name),
                    self.keys.output(run_id, name),
                    self.keys.item_outputs(run_id, name),
                    self.keys.join(run_id, name),
                    self.keys.item_inputs(run_id, name),
                ]
            )
            deletion.forget(run_id, [str(Unit(run_id, name))])
        for run_id, (workflow, _) in taken.items():
            shard = self.keys.shard(run_id)
            deletion.unlink([self.keys.history(run_id)])
            deletion.zrem(shard.runs_of(workflow), [run_id])
            deletion.unlink([self.keys.removal(run_id)])
            deletion.zrem(shard.expiring(), [run_id])
        return deletion.finish()

    def _steps(self, run_id: str, plan_id: str) -> Sequence[str]:
        try:
            return list(self.runs.plan(plan_id).steps)
        except PlanNotFound:
            log.warning("run %s names plan %s, which is gone: its step keys cannot be named, and stay", run_id, plan_id)
            return ()


class _Deletion:
    """Commands of a removal, sent in order, :data:`COMMANDS_PER_ROUND_TRIP` at a time; counts the keys deleted."""

    def __init__(self, client: Redis, keys: Keys) -> None:
        self.pipe: Pipeline = client.pipeline(transaction=False)
        self.keys = keys
        self.unlinks: list[bool] = []
        """For each command queued, whether it is an UNLINK (whose answer counts deleted keys)."""
        self.deleted = 0

    def unlink(self, keys: Iterable[str]) -> None:
        """UNLINK these keys, :data:`KEYS_PER_COMMAND` per command."""
        for chunk in _chunks(list(keys)):
            self.pipe.execute_command("UNLINK", *chunk)  # type: ignore[no-untyped-call] # see scripts.queue
            self._queued(unlink=True)

    def zrem(self, key: str, members: Iterable[str]) -> None:
        """Remove these members from the sorted set ``key``."""
        for chunk in _chunks(list(members)):
            self.pipe.zrem(key, *chunk)
            self._queued(unlink=False)

    def forget(self, run_id: str, members: Iterable[str]) -> None:
        """Remove these units of a run from its shard's leases and outbox."""
        members = list(members)
        shard = self.keys.shard(run_id)
        self.zrem(shard.leases(), members)
        self.zrem(shard.outbox(), members)

    def finish(self) -> int:
        """Send what is queued; the keys deleted in all."""
        self._send()
        return self.deleted

    def _queued(self, *, unlink: bool) -> None:
        self.unlinks.append(unlink)
        if len(self.unlinks) >= COMMANDS_PER_ROUND_TRIP:
            self._send()

    def _send(self) -> None:
        if self.unlinks:
            results = self.pipe.execute()
            self.deleted += sum(int(r) for r, unlink in zip(results, self.unlinks, strict=True) if unlink)
            self.unlinks = []


def _chunks(values: list[str]) -> list[list[str]]:
    return [values[i : i + KEYS_PER_COMMAND] for i in range(0, len(values), KEYS_PER_COMMAND)]
