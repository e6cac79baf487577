"""The archive queue on Redis: finished runs waiting for the durable history, read whole for the exporter.

Implements :class:`orchestrator.engine.ports.Archive`. The run-ending scripts add a run marked
``archive`` to :meth:`~orchestrator.store.keys.Keys.archiving`, scored by when it ended; the
exporter (:mod:`orchestrator.history.exporter`) reads a batch here, writes it to PostgreSQL, then
calls :meth:`RedisArchive.done`. A run is read in two pipelined round trips per batch: the runs'
hashes, histories and index scores, then their steps' hashes and outputs.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Sequence
from datetime import datetime
from itertools import islice
from typing import Any, cast

from redis.client import Pipeline

from orchestrator.engine.ports import ArchivedRun
from orchestrator.engine.records import RunEvent, RunRecord, StepRecord
from orchestrator.errors import PlanNotFound
from orchestrator.store.connections import all_reachable
from orchestrator.store.runs import RunsPart

log = logging.getLogger(__name__)


@all_reachable
class RedisArchive(RunsPart):
    """:class:`~orchestrator.engine.ports.Archive` on Redis."""

    def pending(self, limit: int) -> list[tuple[str, float]]:
        """Up to ``limit`` queued run ids with the time each ended, oldest first (of all shards)."""
        pipe = self.redis.pipeline(transaction=False)
        for shard in self.keys.all_shards:
            pipe.zrange(shard.archiving(), 0, limit - 1, withscores=True)
        found = cast(list[list[tuple[str, float]]], pipe.execute())
        oldest = islice(heapq.merge(*found, key=lambda entry: entry[1]), limit)
        return [(str(member), float(score)) for member, score in oldest]

    def size(self) -> int:
        """How many finished runs wait for the history."""
        pipe = self.redis.pipeline(transaction=False)
        for shard in self.keys.all_shards:
            pipe.zcard(shard.archiving())
        return sum(int(count) for count in pipe.execute())

    def read(self, run_ids: Sequence[str]) -> dict[str, ArchivedRun]:
        """The runs, whole: record with steps and outputs, events, epoch and creation score.

        A run whose hash is gone, or whose plan is, is left out (nothing can be written for it).
        """
        pipe = self.redis.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.hgetall(self.keys.run(run_id))
            pipe.xrange(self.keys.history(run_id))
            pipe.zscore(self.keys.shard(run_id).runs(), run_id)
        raw = pipe.execute()
        found: dict[str, tuple[dict[str, str], list[Any], float | None, list[str]]] = {}
        for i, run_id in enumerate(run_ids):
            meta, entries, score = raw[3 * i : 3 * i + 3]
            if not meta or not meta.get("plan_id"):
                continue
            try:
                names = list(self.runs.plan(meta["plan_id"]).steps)
            except PlanNotFound:
                log.warning("run %s names plan %s, which is gone; its record cannot be read", run_id, meta["plan_id"])
                continue
            found[run_id] = (meta, entries, score, names)
        pipe = self.redis.pipeline(transaction=False)
        for run_id, (_, _, _, names) in found.items():
            for name in names:
                pipe.hgetall(self.keys.step(run_id, name))
                pipe.get(self.keys.output(run_id, name))
        states = iter(pipe.execute())
        archived: dict[str, ArchivedRun] = {}
        for run_id, (meta, entries, score, names) in found.items():
            steps = {name: StepRecord.from_redis(next(states), next(states)) for name in names}
            record = RunRecord.from_redis(meta, steps)
            events = [RunEvent.from_redis(event_id, fields) for event_id, fields in entries]
            created = float(score) if score is not None else datetime.fromisoformat(record.created_at).timestamp()
            archived[run_id] = ArchivedRun(record, events, int(meta.get("epoch") or 0), created)
        return archived

    def done(self, entries: Sequence[tuple[str, float]]) -> int:
        """Dequeue these runs, each only if its score is still the one read; returns how many left.

        A run retried and ended again after it was read has a new score: it stays, to be written
        again at its new epoch. The check and the removal are one optimistic transaction per shard.
        """
        by_shard: dict[str, dict[str, float]] = {}
        for run_id, score in entries:
            by_shard.setdefault(self.keys.shard(run_id).archiving(), {})[run_id] = score
        return sum(self._dequeue(key, wanted) for key, wanted in by_shard.items())

    def _dequeue(self, key: str, wanted: dict[str, float]) -> int:
        gone: list[str] = []

        def remove(pipe: Pipeline) -> None:
            scores = pipe.zmscore(key, list(wanted))
            gone[:] = [m for m, s in zip(wanted, scores, strict=True) if s is not None and float(s) == wanted[m]]
            pipe.multi()
            if gone:
                pipe.zrem(key, *gone)

        self.redis.transaction(remove, key)
        return len(gone)

    def defer(self, run_id: str, seconds: float) -> None:
        """Move a queued run to ``seconds`` from now (the back of the queue), if it is still queued."""
        self.redis.zadd(self.keys.shard(run_id).archiving(), {run_id: time.time() + seconds}, xx=True)

    def hot(self, run_ids: Sequence[str]) -> dict[str, float]:
        """The runs among these whose hash is still here, with their score in the runs index."""
        pipe = self.redis.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.exists(self.keys.run(run_id))
            pipe.zscore(self.keys.shard(run_id).runs(), run_id)
        raw = pipe.execute()
        present: dict[str, float] = {}
        for i, run_id in enumerate(run_ids):
            exists, score = raw[2 * i], raw[2 * i + 1]
            if exists:
                present[run_id] = float(score) if score is not None else float("nan")
        return present

    def hold(self, owner: str, seconds: float) -> bool:
        """Take the exporter's lock for ``seconds``, or renew it when ``owner`` holds it already."""
        key, ms = self.keys.history_lock(), max(1, int(seconds * 1000))
        if self.redis.set(key, owner, nx=True, px=ms):
            return True

        mine: list[bool] = []

        def renew(pipe: Pipeline) -> None:
            mine[:] = [pipe.get(key) == owner]
            if mine[0]:
                pipe.multi()
                pipe.pexpire(key, ms)

        self.redis.transaction(renew, key)
        return mine == [True]

    def holder(self) -> str | None:
        """Who holds the exporter's lock now (None: nobody)."""
        found = self.redis.get(self.keys.history_lock())
        return None if found is None else str(found)

    def release(self, owner: str) -> None:
        """Let the exporter's lock go, if ``owner`` holds it."""
        key = self.keys.history_lock()

        def let_go(pipe: Pipeline) -> None:
            if pipe.get(key) == owner:
                pipe.multi()
                pipe.delete(key)

        self.redis.transaction(let_go, key)
