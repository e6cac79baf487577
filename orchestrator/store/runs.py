"""Runs and plans in Redis: creating a run, reading it back, listing, cancelling, resetting for retry.

A plan is stored once under its content hash and cached in process (plans never change). A run
is its own hash, a hash per step and a string per output (:mod:`orchestrator.store.keys`); a run
is read back in one round trip and parsed by :meth:`RunRecord.from_redis`.
"""

from __future__ import annotations

import heapq
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import lru_cache
from itertools import chain, islice
from typing import Any, cast

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import NoScriptError

from orchestrator.engine.ports import ListKey, NewRun, Outbound, RunPage, RunQuery
from orchestrator.engine.records import RunEvent, RunRecord, RunStatus, RunSummary, StepRecord, StepStatus, now_iso
from orchestrator.engine.rules import Decision, decide
from orchestrator.engine.unit import Unit
from orchestrator.engine.verdicts import Cancellation, CancelVerdict, Reset
from orchestrator.errors import PlanNotFound, RunNotFound, RunStateError
from orchestrator.plan.compiler import Plan
from orchestrator.store.connections import all_reachable, reachable
from orchestrator.store.keys import Keys
from orchestrator.store.scripts import Part, Scripts, load, queue
from orchestrator.store.transitions import HISTORY_LIMIT, event

log = logging.getLogger(__name__)

SUBMISSION_TTL = 7 * 86400.0
"""Seconds a submission's idempotency key keeps answering with the run it started, by default
(``ORCH_SUBMISSION_TTL``); the key expires on its own, whatever retention does to the run."""
PLAN_CACHE = 256
PUSH_BATCH = 1000
"""Messages per ``LPUSH`` of a new run's roots, as ``create.lua`` pushes them (``lib.lua``'s ``BATCH``:
keep the two equal)."""


@all_reachable
class RedisRuns(Part):
    """:class:`~orchestrator.engine.ports.Runs` on Redis.

    Args:
        submission_ttl: Seconds a submission's idempotency key answers with its run.
    """

    def __init__(self, client: Redis, keys: Keys, scripts: Scripts, *, submission_ttl: float = SUBMISSION_TTL) -> None:
        super().__init__(client, keys, scripts)
        self.plan = lru_cache(maxsize=PLAN_CACHE)(self._fetch_plan)
        self.submission_ttl = submission_ttl

    # --- plans -------------------------------------------------------------------------------

    def save_plan(self, plan: Plan) -> None:
        """Store a plan under its content hash (idempotent). A plan already there is not serialised again:
        a 10,000-step plan is megabytes of JSON, and nothing deletes a plan once stored."""
        key = self.keys.plan(plan.plan_id)
        if not self.redis.exists(key):
            self.redis.set(key, plan.to_json(), nx=True)

    @reachable
    def _fetch_plan(self, plan_id: str) -> Plan:
        raw = self.redis.get(self.keys.plan(plan_id))
        if raw is None:
            raise PlanNotFound(plan_id)
        return Plan.model_validate_json(raw)

    def plan_of(self, run_id: str) -> tuple[Plan, str]:
        """A run's plan and its current status.

        Raises:
            RunNotFound: no such run.
        """
        plan_id, status = self.redis.hmget(self.keys.run(run_id), ["plan_id", "status"])
        if plan_id is None:
            raise RunNotFound(run_id)
        return self.plan(str(plan_id)), str(status)

    # --- runs --------------------------------------------------------------------------------

    def create(
        self, run: NewRun, idempotency_key: str | None = None, outbound: Mapping[str, Outbound] | None = None
    ) -> tuple[str, bool]:
        """Record a new run, its roots queued and guarded by the outbox, in one atomic script (``lua/create.lua``).

        Args:
            run: The run.
            idempotency_key: With a key already used for this workflow, nothing is written.
            outbound: The roots' messages (by name), the broker being this Redis, pushed onto their
                queues in the same round trip: by the script itself with an idempotency key (every
                one, when the run is created), otherwise right after it in the same pipeline.

        Returns:
            ``(run_id, created)``; with an idempotency key already used for this workflow, the
            earlier run's id and False. On Redis Cluster a run with an idempotency key gets a new
            id in the shard of its key, so that one script (one slot) writes both: the id
            returned is the run's.
        """
        plan = run.plan
        self.save_plan(plan)
        outbound = outbound or {}
        submission = None
        if idempotency_key is not None:
            submission = self.keys.submission(plan.workflow, idempotency_key)
            if self.keys.clustered:  # never with outbound: a cluster cannot be the broker
                shard = self.keys.submission_shard(plan.workflow, idempotency_key)
                run = replace(run, run_id=self.keys.new_run_id(shard))
        run_id, run_key, score = run.run_id, self.keys.run(run.run_id), time.time()
        index = self.keys.shard(run_id)
        fields = self._fields(run)
        keys = [run_key, index.runs(), index.runs_of(plan.workflow), self.keys.history(run_id), index.outbox()]
        keys.append(submission or run_key)
        args: list[Any] = [
            "" if submission is None else max(1, round(self.submission_ttl)),
            run_id,
            run.created_at,
            score,
            score + run.publish_grace,
            run.trigger.value,
            run.started_by or "",
            len(fields),
            *chain.from_iterable(fields.items()),
        ]
        # Only the script can tell whether an idempotency key was used already: then it pushes the
        # roots' messages itself. Without a key the run is always created, and its messages go in
        # the same round trip right after the script rather than through it (a 10,000-root run's
        # 12 MB of script arguments cost Redis about 45 ms more: copied into Lua strings, then
        # collected); the outbox guards them from the script on.
        pushed_after = bool(outbound) and submission is None
        in_script = {} if pushed_after else outbound
        for step in plan.roots:
            message = in_script.get(step)
            step_key = self.keys.step(run_id, step)
            keys += [step_key, self.keys.queue_list(message.queue, message.priority) if message else step_key]
            args += [step, str(Unit(run_id, step)), message.payload if message else ""]
        if pushed_after:
            self._create_then_push(run_id, keys, args, [outbound[s] for s in plan.roots if s in outbound])
            return run_id, True
        verdict, *existing = (str(r) for r in self.scripts.create(keys=keys, args=args))
        if verdict == "exists":
            return existing[0], False
        return run_id, True

    def _create_then_push(self, run_id: str, keys: list[str], args: list[Any], messages: list[Outbound]) -> None:
        """``create.lua`` and then the ``LPUSH``es of the roots' messages, in one pipeline.

        A server that does not know the script (restarted or flushed) runs the pushes all the same:
        the script is loaded and run once more on its own. The run is recorded then, and a root a
        worker met before it was (dropped: its run was missing) is published again by the outbox
        once its guard runs out; should that second call fail too, the submit fails, and the
        pushed messages, which name no run, are dropped by the workers that meet them. A push the
        server refuses once the run is recorded (out of memory) leaves it to the outbox as well.
        """
        lists: dict[str, list[str]] = {}
        for message in messages:
            lists.setdefault(self.keys.queue_list(message.queue, message.priority), []).append(message.payload)
        pipe = self.redis.pipeline(transaction=False)
        queue(pipe, self.scripts.create, keys, args)
        for key, payloads in lists.items():
            for start in range(0, len(payloads), PUSH_BATCH):
                pipe.lpush(key, *payloads[start : start + PUSH_BATCH])
        created, *pushes = pipe.execute(raise_on_error=False)
        if isinstance(created, NoScriptError):
            load(self.redis, self.scripts.create)
            self.scripts.create(keys=keys, args=args)
        elif isinstance(created, Exception):
            raise created
        refused = [reply for reply in pushes if isinstance(reply, Exception)]
        if refused:  # the run and its guards are recorded: the outbox publishes its roots
            log.warning(
                "run %s: %d pushes of its roots refused (%s); the outbox publishes them",
                run_id,
                len(refused),
                refused[0],
            )

    @staticmethod
    def _fields(run: NewRun) -> dict[str, str | int]:
        """The run's hash as created."""
        plan = run.plan
        return {
            "run_id": run.run_id,
            "workflow": plan.workflow,
            "version": "" if plan.definition.version is None else str(plan.definition.version),
            "status": RunStatus.PENDING.value,
            "trigger": run.trigger.value,
            "started_by": run.started_by or "",
            "params": json.dumps(run.params),
            "created_at": run.created_at,
            "logical_date": run.logical_date or "",
            "plan_id": plan.plan_id,
            "definition_hash": plan.definition_hash,
            "remaining": len(plan.steps),
            "failed": 0,
            "retention": repr(float(run.retention)),  # seconds its keys are kept once it ended
            **({"archive": "1"} if run.archive else {}),
        }

    def get(self, run_id: str) -> RunRecord:
        """The full run record, read in two round trips (the run's hash, then its steps).

        Raises:
            RunNotFound: no such run.
        """
        meta = cast(dict[str, str], self.redis.hgetall(self.keys.run(run_id)))
        if not meta:
            raise RunNotFound(run_id)
        names = list(self.plan(meta["plan_id"]).steps)
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self.keys.step(run_id, name))
            pipe.get(self.keys.output(run_id, name))
        raw = pipe.execute()
        steps = {name: StepRecord.from_redis(raw[2 * i], raw[2 * i + 1]) for i, name in enumerate(names)}
        return RunRecord.from_redis(meta, steps)

    def summary(self, run_id: str) -> RunSummary:
        """The run without its steps (one read of its own hash).

        Raises:
            RunNotFound: no such run.
        """
        meta = cast(dict[str, str], self.redis.hgetall(self.keys.run(run_id)))
        if not meta:
            raise RunNotFound(run_id)
        return RunSummary.from_redis(meta)

    def step(self, run_id: str, name: str) -> StepRecord:
        """One step's record with its output."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.step(run_id, name))
        pipe.get(self.keys.output(run_id, name))
        state, output = pipe.execute()
        return StepRecord.from_redis(state, output)

    def steps_without_outputs(self, run_id: str, names: Sequence[str]) -> dict[str, StepRecord]:
        """The steps' records without their outputs, in one round trip: what the web UI polls."""
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self.keys.step(run_id, name))
        return {name: StepRecord.from_redis(state, None) for name, state in zip(names, pipe.execute(), strict=True)}

    def version(self, run_id: str, fanned: Sequence[str]) -> str:
        """A value that changes whenever the run's state does, read cheaply (one round trip).

        Every change of a step's status is an event of the history, so its last id moves; items of
        a ``for_each`` step have no events, so their counts (``fanned`` names those steps) are added.
        """
        pipe = self.redis.pipeline(transaction=False)
        pipe.xrevrange(self.keys.history(run_id), "+", "-", count=1)
        pipe.hget(self.keys.run(run_id), "status")
        for step in fanned:
            pipe.hmget(self.keys.step(run_id, step), ["items", "items_done"])
        last, status, *counts = pipe.execute()
        if status is None:
            raise RunNotFound(run_id)
        parts = [str(last[0][0]) if last else "-", str(status)] + [f"{i}/{d}" for i, d in counts]
        return ":".join(parts)

    def page(self, query: RunQuery) -> RunPage:
        """A page of runs, newest first, filtered; a cursor continues where it ended.

        Runs are indexed by creation time, all of them and per workflow; status, trigger and
        actor are read from each run's hash. One call examines at most :data:`PAGE_SCAN` times the page size,
        so a filter that matches rarely returns a short page with a cursor rather than scanning
        everything.

        Raises:
            InvalidArgument: the cursor is not one this store gave.
        """
        shards = self.keys.all_shards
        indexes = [shard.runs_of(query.workflow) if query.workflow else shard.runs() for shard in shards]
        top: float | str = "+inf"
        last_id: str | None = None
        if query.after:
            cursor = ListKey.parse(query.after)
            top, last_id = cursor.score, cursor.run_id
        if query.until is not None and (last_id is None or query.until <= float(top)):
            top, last_id = f"({query.until!r}", None  # created strictly before `until`
        floor = query.since if query.since is not None else "-inf"
        found: list[RunSummary] = []
        budget = PAGE_SCAN * query.limit
        size = query.limit  # a page without a filter reads just its runs; a filter that skips some reads more
        while budget > 0 and len(found) < query.limit:
            wanted = min(budget, size)
            asked = wanted + (last_id is not None)  # the range starts at the cursor's own entry, inclusive
            raw = self._newest(indexes, top, floor, asked)
            # The entries of the cursor's own score up to it were on earlier pages.
            batch = [(m, sc) for m, sc in raw if last_id is None or not (str(sc) == str(top) and m >= last_id)]
            batch = batch[:wanted]
            budget -= max(len(batch), 1)
            size = min(2 * size, PAGE_BATCH)
            if len(raw) < asked and not batch:
                return RunPage(found, None)
            pipe = self.redis.pipeline(transaction=False)
            for run_id, _ in batch:
                pipe.hgetall(self.keys.run(run_id))
            for (run_id, score), meta in zip(batch, pipe.execute(), strict=True):
                top, last_id = score, run_id
                if meta and _matches(meta, query):
                    found.append(RunSummary.from_redis(meta))
                    if len(found) == query.limit:
                        break
        return RunPage(found, ListKey(float(top), last_id).cursor() if last_id is not None else None)

    def _newest(
        self, indexes: Sequence[str], top: float | str, floor: float | str, count: int
    ) -> list[tuple[str, float]]:
        """The first ``count`` entries from ``top`` down to ``floor`` of these indexes (one per shard) merged,
        ordered as ZREVRANGEBYSCORE orders one: by score, then by member, both descending."""
        if len(indexes) == 1:
            return cast(
                list[tuple[str, float]],
                self.redis.zrevrangebyscore(indexes[0], top, floor, start=0, num=count, withscores=True),
            )
        pipe = self.redis.pipeline(transaction=False)
        for index in indexes:
            pipe.zrevrangebyscore(index, top, floor, start=0, num=count, withscores=True)
        found = cast(list[list[tuple[str, float]]], pipe.execute())
        return list(islice(heapq.merge(*found, key=lambda entry: (entry[1], entry[0]), reverse=True), count))

    def cancel(self, run_id: str, steps: Sequence[str], by: str) -> Cancellation:
        """Cancel a run (``lua/cancel.lua``), recording who did; the result holds the task ids to revoke."""
        shard = self.keys.shard(run_id)
        keys = [
            self.keys.run(run_id),
            self.keys.history(run_id),
            shard.expiring(),
            shard.archiving(),
            *(self.keys.step(run_id, s) for s in steps),
        ]
        verdict, *task_ids = (str(r) for r in self.scripts.cancel(keys=keys, args=[now_iso(), by]))
        return Cancellation(CancelVerdict(verdict), tuple(task_ids) if verdict == CancelVerdict.OK else ())

    def reset_for_retry(self, plan: Plan, run_id: str, by: str) -> Reset:
        """Reset every step that did not succeed; returns the steps to start and those to skip.

        Succeeded steps keep status and output, and count as arrived at their dependents' joins.
        The run's epoch goes up by one: a message sent before the reset (an item still queued, a
        retry waiting out its backoff) is stale from now on, whatever unit it names. The run leaves
        the retention and archive queues (it ends again later). The reset is one transaction
        watching the run's hash, so it never lands on a run that retention took meanwhile, nor
        twice when two retries race.

        Raises:
            RunNotFound: no such run (retention may have removed it).
            RunStateError: the run is not finished (another retry reset it first).
        """
        names = list(plan.steps)
        run_key = self.keys.run(run_id)
        kept: set[str] = set()
        reset: list[str] = []

        def write(pipe: Pipeline) -> None:
            status = cast(str | None, pipe.hget(run_key, "status"))  # under WATCH: a change to the run aborts the write
            if status is None:
                raise RunNotFound(run_id)
            if not RunStatus(status).finished:
                raise RunStateError(f"run {run_id} is {status}; cancel it first or wait for it to finish")
            reads = self.redis.pipeline(transaction=False)
            for step in names:
                reads.hgetall(self.keys.step(run_id, step))
            states: dict[str, dict[str, Any]] = dict(zip(names, reads.execute(), strict=True))
            kept.clear()
            kept.update(s for s in names if states[s].get("status") == StepStatus.SUCCEEDED.value)
            reset[:] = [s for s in names if s not in kept]
            pipe.multi()
            for step in reset:
                items = int(states[step].get("items") or 0)
                pipe.delete(
                    self.keys.step(run_id, step),
                    self.keys.output(run_id, step),
                    self.keys.join(run_id, step),
                    self.keys.item_outputs(run_id, step),
                    self.keys.item_inputs(run_id, step),
                    *(self.keys.item(run_id, step, i) for i in range(items)),
                )
                pipe.hset(self.keys.step(run_id, step), "status", StepStatus.PENDING.value)
                arrived = [n for n in plan.steps[step].needs if n in kept]
                if arrived:
                    pipe.hset(self.keys.join(run_id, step), mapping=dict.fromkeys(arrived, StepStatus.SUCCEEDED.value))
            pipe.hset(run_key, mapping={"status": "running", "remaining": len(reset), "failed": 0})
            pipe.hdel(run_key, "finished_at")
            pipe.zrem(self.keys.shard(run_id).expiring(), run_id)
            pipe.zrem(self.keys.shard(run_id).archiving(), run_id)
            pipe.xadd(self.keys.history(run_id), event(now_iso(), "retried", by=by), **HISTORY_LIMIT)
            pipe.hincrby(run_key, "epoch", 1)

        epoch = int(cast(list[Any], self.redis.transaction(write, run_key))[-1])
        start: list[str] = []
        skip: list[str] = []
        for step in reset:
            spec = plan.steps[step]
            if all(n in kept for n in spec.needs):
                decision = decide(spec.trigger_rule, len(spec.needs), 0, 0, len(spec.needs))
                (start if decision is Decision.FIRE else skip).append(step)
        return Reset(tuple(start), tuple(skip), epoch)

    def history(self, run_id: str, after: str = "-", limit: int = 1000) -> list[RunEvent]:
        """The run's events, oldest first, after the event id ``after`` (``-``: from the start).

        Raises:
            RunNotFound: no such run.
        """
        start = "-" if after == "-" else f"({after}"
        entries = cast(
            list[tuple[str, dict[str, str]]], self.redis.xrange(self.keys.history(run_id), start, "+", limit)
        )
        if not entries and not self.redis.exists(self.keys.run(run_id)):
            raise RunNotFound(run_id)
        return [RunEvent.from_redis(event_id, fields) for event_id, fields in entries]


class RunsPart(Part):
    """A part of the store that names a run's keys from its plan (the janitor, the archive).

    Args:
        runs: The store's runs (their plans name each run's steps, cached in process).
    """

    def __init__(self, client: Redis, keys: Keys, scripts: Scripts, runs: RedisRuns) -> None:
        super().__init__(client, keys, scripts)
        self.runs = runs


PAGE_SCAN = 50
"""How many runs one page may examine, per run it returns (filters that match rarely stop early)."""
PAGE_BATCH = 500
"""Index entries one read of a page takes at most (the first read takes the page's size)."""


def _matches(meta: dict[str, str], query: RunQuery) -> bool:
    return (
        (query.status is None or meta.get("status") == query.status.value)
        and (query.trigger is None or meta.get("trigger") == query.trigger.value)
        and (query.actor is None or meta.get("started_by") == query.actor)
    )
