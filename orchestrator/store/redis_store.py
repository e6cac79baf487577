"""The run store: every run's state in Redis, behind one small interface.

Each transition that must not race (claiming a step, ending it and advancing its dependents'
joins, cancelling) is one Lua script, so two deliveries of one message, or two workers ending two
needs of one step at the same moment, cannot both win. Reads of a whole run are one pipeline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, NamedTuple, Protocol, cast

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import NoScriptError

from orchestrator.engine.records import (
    FINISHED_STEP,
    RunRecord,
    RunStatus,
    StepError,
    StepRecord,
    StepStatus,
    Trigger,
    now_iso,
)
from orchestrator.engine.rules import Decision, decide
from orchestrator.engine.unit import StepMessage
from orchestrator.errors import RunNotFound
from orchestrator.plan.compiler import Plan
from orchestrator.store.keys import Keys, lease_member, parse_lease_member
from orchestrator.store.scripts import Scripts

MAX_RECOVERIES = 5
MAX_REPUBLISH_WAIT = 3600.0
"""Longest wait before a queued unit whose message may be lost is published once more."""
SUBMISSION_TTL = 7 * 86400
FINISHED = tuple(s.value for s in FINISHED_STEP)


@dataclass(frozen=True)
class Unit:
    """One unit of work: a step, or one item of a ``for_each`` step."""

    run_id: str
    step: str
    item: int | None = None

    @property
    def member(self) -> str:
        return lease_member(self.run_id, self.step, self.item)


@dataclass(frozen=True)
class Claim:
    """The verdict on a delivery: ``ok`` to run it, anything else to drop it."""

    verdict: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict == "ok"


class Context(NamedTuple):
    """What a step's references can name, read from the store: run fields, upstream outputs and statuses."""

    meta: dict[str, str]
    outputs: dict[str, Any]
    statuses: dict[str, str]


@dataclass(frozen=True)
class Completion:
    """What ending a step changed: which dependents fire or skip, and the run's status."""

    verdict: str
    run_status: str = ""
    fired: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()

    @property
    def run_finished(self) -> bool:
        return self.run_status in ("succeeded", "failed")


@dataclass(frozen=True)
class NewRun:
    run_id: str
    plan: Plan
    params: dict[str, Any]
    trigger: Trigger
    started_by: str | None = None
    created_at: str = field(default_factory=now_iso)
    publish_grace: float = 60.0


class RunStore(Protocol):
    """What the coordinator and the step runner need from run state (one implementation: Redis)."""

    def load_plan(self, plan_id: str) -> Plan: ...
    def create_run(self, run: NewRun, idempotency_key: str | None = None) -> tuple[str, bool]: ...
    def run_meta(self, run_id: str) -> dict[str, str]: ...
    def get_run(self, run_id: str) -> RunRecord: ...
    def list_runs(self, workflow: str | None = None, status: str | None = None, limit: int = 20) -> list[RunRecord]: ...
    def claim(self, unit: Unit, task_id: str, attempt: int, worker: str, lease_seconds: float) -> Claim: ...
    def complete(
        self,
        plan: Plan,
        unit: Unit,
        task_id: str,
        status: StepStatus,
        *,
        output: Any = None,
        error: StepError | None = None,
        lease_seconds: float = 60.0,
    ) -> Completion: ...
    def schedule_retry(self, unit: Unit, task_id: str, error: StepError, guard_until: float) -> bool: ...
    def published(self, units: Iterable[Unit]) -> None: ...
    def mark_queued(self, run_id: str, steps: Sequence[str], lease_seconds: float) -> None: ...
    def release_lease(self, unit: Unit) -> None: ...
    def start_fan_out(self, unit: Unit, items: Sequence[Any], batch: int = 1000) -> None: ...
    def fanned_out(self, unit: Unit) -> None: ...
    def item_input(self, run_id: str, step: str, index: int) -> Any: ...
    def complete_item(
        self, unit: Unit, task_id: str, status: StepStatus, *, output: Any = None, error: StepError | None = None
    ) -> tuple[str, str]: ...
    def item_outputs(self, run_id: str, step: str, count: int) -> list[Any]: ...
    def unit_state(self, unit: Unit) -> dict[str, str]: ...
    def context(self, run_id: str, outputs: Sequence[str], statuses: Sequence[str]) -> Context: ...
    def claim_and_read(
        self,
        unit: Unit,
        task_id: str,
        attempt: int,
        worker: str,
        lease_seconds: float,
        outputs: Sequence[str],
        statuses: Sequence[str],
        params: bool = True,
    ) -> tuple[Claim, Context | None]: ...
    def cancel(self, run_id: str, steps: Sequence[str]) -> tuple[str, list[str]]: ...
    def reset_for_retry(self, plan: Plan, run_id: str) -> tuple[list[str], list[str]]: ...
    def expired_leases(self, now: float, limit: int) -> list[str]: ...
    def recover(self, member: str, guard_seconds: float) -> tuple[str, StepMessage | None, str]: ...
    def begin_side_effect(self, key: str, unit: Unit, task_id: str, ttl: float) -> tuple[str, Any]: ...
    def end_side_effect(self, key: str, task_id: str, output: Any, ttl: float) -> None: ...
    def abandon_side_effect(self, key: str) -> None: ...


class RedisRunStore:
    """:class:`RunStore` on Redis (the only implementation; tests run it against a real Redis).

    Args:
        client: A client with ``decode_responses=True``.
        keys: The key namespace.
    """

    def __init__(self, client: Redis, keys: Keys | None = None) -> None:
        self.redis = client
        self.keys = keys or Keys()
        self.scripts = Scripts.register(client)
        self._plans = lru_cache(maxsize=256)(self._fetch_plan)

    # --- plans -------------------------------------------------------------------------------

    def save_plan(self, plan: Plan) -> None:
        """Store a plan under its content hash (idempotent)."""
        self.redis.set(self.keys.plan(plan.plan_id), plan.model_dump_json(), nx=True)

    def load_plan(self, plan_id: str) -> Plan:
        """A stored plan; plans never change, so they are cached in process."""
        return self._plans(plan_id)

    def _fetch_plan(self, plan_id: str) -> Plan:
        raw = self.redis.get(self.keys.plan(plan_id))
        if raw is None:
            raise RunNotFound(f"plan {plan_id}")
        return Plan.model_validate_json(raw)

    # --- runs --------------------------------------------------------------------------------

    def create_run(self, run: NewRun, idempotency_key: str | None = None) -> tuple[str, bool]:
        """Record a new run, its roots queued and guarded by the outbox, in one transaction.

        Returns:
            ``(run_id, created)``; with an idempotency key already used for this workflow, the
            earlier run's id and False (nothing is written).
        """
        plan = run.plan
        self.save_plan(plan)
        submission = self.keys.submission(plan.workflow, idempotency_key) if idempotency_key is not None else None
        existing: list[str] = []

        def write(pipe: Pipeline) -> None:
            if submission is not None and (found := pipe.get(submission)) is not None:
                existing.append(str(found))
                return
            pipe.multi()
            if submission is not None:
                pipe.set(submission, run.run_id, ex=SUBMISSION_TTL)
            self._write_run(pipe, run)

        self.redis.transaction(write, *([submission] if submission else []))
        if existing:
            return existing[0], False
        return run.run_id, True

    def _write_run(self, pipe: Pipeline, run: NewRun) -> None:
        plan = run.plan
        score = time.time()
        pipe.hset(
            self.keys.run(run.run_id),
            mapping={
                "run_id": run.run_id,
                "workflow": plan.workflow,
                "version": "" if plan.definition.version is None else str(plan.definition.version),
                "status": RunStatus.PENDING.value,
                "trigger": run.trigger.value,
                "started_by": run.started_by or "",
                "params": json.dumps(run.params),
                "created_at": run.created_at,
                "plan_id": plan.plan_id,
                "definition_hash": plan.definition_hash,
                "remaining": len(plan.steps),
                "failed": 0,
            },
        )
        pipe.zadd(self.keys.runs(), {run.run_id: score})
        pipe.zadd(self.keys.runs_of(plan.workflow), {run.run_id: score})
        for step in plan.roots:
            pipe.hset(self.keys.step(run.run_id, step), "status", StepStatus.QUEUED.value)
            pipe.zadd(self.keys.outbox(), {lease_member(run.run_id, step): score + run.publish_grace})

    def mark_queued(self, run_id: str, steps: Sequence[str], lease_seconds: float) -> None:
        """Mark steps queued before their messages are published; a lease guards the gap."""
        expiry = time.time() + lease_seconds
        pipe = self.redis.pipeline(transaction=False)
        for step in steps:
            pipe.hset(self.keys.step(run_id, step), "status", StepStatus.QUEUED.value)
            pipe.zadd(self.keys.outbox(), {lease_member(run_id, step): expiry})
        pipe.execute()

    def published(self, units: Iterable[Unit]) -> None:
        """Drop the outbox entries of units whose messages are on the broker now."""
        members = [u.member for u in units]
        if members:
            self.redis.zrem(self.keys.outbox(), *members)

    def run_meta(self, run_id: str) -> dict[str, str]:
        """The run's own hash (no steps)."""
        data = cast(dict[str, str], self.redis.hgetall(self.keys.run(run_id)))
        if not data:
            raise RunNotFound(run_id)
        return data

    # --- transitions -------------------------------------------------------------------------

    def claim(self, unit: Unit, task_id: str, attempt: int, worker: str, lease_seconds: float) -> Claim:
        """Take a unit for one execution; see ``lua/claim.lua`` for the verdicts."""
        result = self.scripts.claim(**self._claim_call(unit, task_id, attempt, worker, lease_seconds))
        return Claim(str(result[0]), str(result[1]))

    def claim_and_read(
        self,
        unit: Unit,
        task_id: str,
        attempt: int,
        worker: str,
        lease_seconds: float,
        outputs: Sequence[str],
        statuses: Sequence[str],
        params: bool = True,
    ) -> tuple[Claim, Context | None]:
        """Claim a unit and read what its references need, in one round trip.

        The reads are queued after the claim on the same connection, so they see the state the
        claim left; when the claim fails they are simply not used. With ``params`` False the
        run's params are not read (``"{}"``): a ``for_each`` item that does not name them would
        otherwise fetch and parse them once per item, and they may hold the items themselves.
        """
        call = self._claim_call(unit, task_id, attempt, worker, lease_seconds)

        def execute() -> list[Any]:
            # EVALSHA queued by hand: a Script called on a pipeline makes execute() send SCRIPT
            # EXISTS first, a second round trip on every claim.
            pipe = self.redis.pipeline(transaction=False)
            pipe.evalsha(self.scripts.claim.sha, len(call["keys"]), *call["keys"], *call["args"])
            self._queue_context(pipe, unit.run_id, outputs, statuses, params)
            return pipe.execute()

        try:
            raw = execute()
        except NoScriptError:  # a restarted or flushed server: load it and claim again (nothing ran)
            self.redis.script_load(self.scripts.claim.script)
            raw = execute()
        claim = Claim(str(raw[0][0]), str(raw[0][1]))
        if not claim.ok:
            return claim, None
        return claim, self._parse_context(unit.run_id, raw[1:], outputs, statuses, params)

    def _claim_call(self, unit: Unit, task_id: str, attempt: int, worker: str, lease_seconds: float) -> dict[str, Any]:
        now = time.time()
        return {
            "keys": [self.keys.run(unit.run_id), self._unit_key(unit), self.keys.leases()],
            "args": [
                task_id,
                attempt,
                worker,
                now_iso(),
                now,
                now + lease_seconds,
                unit.member,
                MAX_RECOVERIES,
                "1" if unit.item is not None else "0",
            ],
        }

    def complete(
        self,
        plan: Plan,
        unit: Unit,
        task_id: str,
        status: StepStatus,
        *,
        output: Any = None,
        error: StepError | None = None,
        lease_seconds: float = 60.0,
    ) -> Completion:
        """End a step and advance its dependents' joins in one atomic script.

        Args:
            plan: The run's plan (dependents and their trigger rules).
            unit: The step (``item`` None).
            task_id: The claiming execution, or ``""`` for the orchestrator's own transitions.
            status: succeeded, failed or skipped.
            output: The JSON-serialisable output, for succeeded steps.
            error: The error, for failed steps.
            lease_seconds: Publish guard of the dependents that fire.
        """
        run_id, step = unit.run_id, unit.step
        keys = [
            self.keys.run(run_id),
            self.keys.step(run_id, step),
            self.keys.output(run_id, step),
            self.keys.leases(),
            self.keys.outbox(),
        ]
        args: list[Any] = [
            task_id,
            status.value,
            now_iso(),
            json.dumps(output) if status is StepStatus.SUCCEEDED else "",
            error.model_dump_json() if error else "",
            unit.member,
            step,
            time.time() + lease_seconds,
            run_id,
        ]
        for dependent in plan.steps[step].dependents:
            keys += [self.keys.join(run_id, dependent), self.keys.step(run_id, dependent)]
            spec = plan.steps[dependent]
            args += [spec.trigger_rule.value, len(spec.needs), dependent]
        result = [str(r) for r in self.scripts.complete(keys=keys, args=args)]
        if result[0] != "ok":
            return Completion(result[0], result[1])
        split = result.index("|")
        return Completion("ok", result[1], tuple(result[2:split]), tuple(result[split + 1 :]))

    def schedule_retry(self, unit: Unit, task_id: str, error: StepError, guard_until: float) -> bool:
        """Record a failed attempt that will run again; False if this execution lost the unit."""
        result = self.scripts.retry(
            keys=[self._unit_key(unit), self.keys.leases()],
            args=[task_id, error.model_dump_json(), now_iso(), guard_until, unit.member],
        )
        return bool(result)

    def start_fan_out(self, unit: Unit, items: Sequence[Any], batch: int = 1000) -> None:
        """Record the items of a ``for_each`` step (in pipelined batches) before their messages go out.

        A second fan-out of the same step (after a crash) rewrites the same inputs; items that
        already ended keep their outputs and their claims drop the repeated messages.
        """
        inputs = self.keys.item_inputs(unit.run_id, unit.step)
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(inputs)
        for start in range(0, len(items), batch):
            pipe.rpush(inputs, *(json.dumps(item) for item in items[start : start + batch]))
            if len(pipe) >= 4:
                pipe.execute()
        pipe.hset(self.keys.step(unit.run_id, unit.step), "items", len(items))
        pipe.hsetnx(self.keys.step(unit.run_id, unit.step), "items_done", 0)
        pipe.execute()

    def fanned_out(self, unit: Unit) -> None:
        """The items' messages are out: the step's own lease is no longer needed (items have theirs)."""
        self.redis.zrem(self.keys.leases(), unit.member)

    def release_lease(self, unit: Unit) -> None:
        """Expire a running unit's lease now (its process died), so a redelivery may take it over."""
        self.redis.zadd(self.keys.leases(), {unit.member: 0}, xx=True)

    def item_input(self, run_id: str, step: str, index: int) -> Any:
        """One item of a ``for_each`` step."""
        raw = self.redis.lindex(self.keys.item_inputs(run_id, step), index)
        return None if raw is None else json.loads(raw)

    def complete_item(
        self, unit: Unit, task_id: str, status: StepStatus, *, output: Any = None, error: StepError | None = None
    ) -> tuple[str, str]:
        """End one item; returns ``(verdict, step task id)`` with verdict all_done / step_failed / recorded / stale."""
        assert unit.item is not None
        result = self.scripts.item(
            keys=[
                self.keys.step(unit.run_id, unit.step),
                self._unit_key(unit),
                self.keys.item_outputs(unit.run_id, unit.step),
                self.keys.leases(),
            ],
            args=[
                task_id,
                status.value,
                now_iso(),
                json.dumps(output) if status is StepStatus.SUCCEEDED else "",
                error.model_dump_json() if error else "",
                unit.item,
                unit.member,
            ],
        )
        return str(result[0]), str(result[1])

    def item_outputs(self, run_id: str, step: str, count: int) -> list[Any]:
        """The outputs of a ``for_each`` step's items, in item order."""
        raw = cast(dict[str, str], self.redis.hgetall(self.keys.item_outputs(run_id, step)))
        return [json.loads(raw[str(i)]) if str(i) in raw else None for i in range(count)]

    def cancel(self, run_id: str, steps: Sequence[str]) -> tuple[str, list[str]]:
        """Cancel a run; returns the verdict and the task ids to revoke."""
        keys = [self.keys.run(run_id)] + [self.keys.step(run_id, s) for s in steps]
        result = [str(r) for r in self.scripts.cancel(keys=keys, args=[now_iso()])]
        return result[0], result[1:]

    # --- reads -------------------------------------------------------------------------------

    def outputs(self, run_id: str, steps: Sequence[str]) -> dict[str, Any]:
        """Outputs of finished steps (missing ones are absent)."""
        if not steps:
            return {}
        raw = self.redis.mget([self.keys.output(run_id, s) for s in steps])
        return {s: json.loads(v) for s, v in zip(steps, raw, strict=True) if v is not None}

    def step_states(self, run_id: str, steps: Sequence[str]) -> dict[str, dict[str, str]]:
        pipe = self.redis.pipeline(transaction=False)
        for step in steps:
            pipe.hgetall(self.keys.step(run_id, step))
        return dict(zip(steps, pipe.execute(), strict=True))

    def unit_state(self, unit: Unit) -> dict[str, str]:
        return cast(dict[str, str], self.redis.hgetall(self._unit_key(unit)))

    def get_run(self, run_id: str) -> RunRecord:
        """The full run record of SPEC.md, read in one round trip."""
        meta = self.run_meta(run_id)
        plan = self.load_plan(meta["plan_id"])
        names = list(plan.steps)
        pipe = self.redis.pipeline(transaction=False)
        for name in names:
            pipe.hgetall(self.keys.step(run_id, name))
            pipe.get(self.keys.output(run_id, name))
        raw = pipe.execute()
        steps = {name: _step_record(raw[2 * i], raw[2 * i + 1]) for i, name in enumerate(names)}
        return RunRecord(
            run_id=run_id,
            workflow=meta["workflow"],
            version=int(meta["version"]) if meta.get("version") else None,
            status=RunStatus(meta["status"]),
            trigger=Trigger(meta["trigger"]),
            started_by=meta.get("started_by") or None,
            params=json.loads(meta.get("params") or "{}"),
            created_at=meta["created_at"],
            started_at=meta.get("started_at") or None,
            finished_at=meta.get("finished_at") or None,
            definition_hash=meta.get("definition_hash") or None,
            steps=steps,
        )

    def list_runs(self, workflow: str | None = None, status: str | None = None, limit: int = 20) -> list[RunRecord]:
        """Newest runs first, optionally of one workflow and/or status."""
        index = self.keys.runs_of(workflow) if workflow else self.keys.runs()
        found: list[RunRecord] = []
        start = 0
        while len(found) < limit:
            ids = cast(list[str], self.redis.zrevrange(index, start, start + 4 * limit - 1))
            if not ids:
                break
            start += len(ids)
            pipe = self.redis.pipeline(transaction=False)
            for run_id in ids:
                pipe.hget(self.keys.run(run_id), "status")
            for run_id, run_status in zip(ids, pipe.execute(), strict=True):
                if run_status is not None and (status is None or run_status == status):
                    found.append(self.get_run(run_id))
                    if len(found) == limit:
                        break
        return found

    def context(self, run_id: str, outputs: Sequence[str], statuses: Sequence[str]) -> Context:
        """What resolving a step's references needs, in one round trip: run fields, outputs, statuses."""
        pipe = self.redis.pipeline(transaction=False)
        self._queue_context(pipe, run_id, outputs, statuses)
        return self._parse_context(run_id, pipe.execute(), outputs, statuses)

    def _queue_context(
        self, pipe: Pipeline, run_id: str, outputs: Sequence[str], statuses: Sequence[str], params: bool = True
    ) -> None:
        pipe.hmget(self.keys.run(run_id), ["workflow", "created_at", *(["params"] if params else [])])
        if outputs:
            pipe.mget([self.keys.output(run_id, s) for s in outputs])
        for step in statuses:
            pipe.hget(self.keys.step(run_id, step), "status")

    def _parse_context(
        self, run_id: str, raw: list[Any], outputs: Sequence[str], statuses: Sequence[str], params: bool = True
    ) -> Context:
        workflow, created, *rest = raw[0]
        params_json = rest[0] if params else None
        if workflow is None:
            raise RunNotFound(run_id)
        values = {s: json.loads(v) for s, v in zip(outputs, raw[1], strict=True) if v is not None} if outputs else {}
        states = dict(zip(statuses, raw[1 + bool(outputs) :], strict=True))
        meta = {"workflow": workflow, "params": params_json or "{}", "created_at": created}
        return Context(meta, values, {k: v or "pending" for k, v in states.items()})

    # --- idempotency keys ------------------------------------------------------------------

    def begin_side_effect(self, key: str, unit: Unit, task_id: str, ttl: float) -> tuple[str, Any]:
        """Take an idempotency key: ``("go", None)``, ``("done", output)`` or ``("busy", None)``."""
        verdict, output = self.scripts.idempotency(
            keys=[self.keys.idempotency(key), self.keys.leases()],
            args=[unit.member, task_id, time.time(), int(ttl)],
        )
        return str(verdict), (json.loads(output) if verdict == "done" else None)

    def end_side_effect(self, key: str, task_id: str, output: Any, ttl: float) -> None:
        """Record the output of a side effect that ran, so later deliveries reuse it."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(
            self.keys.idempotency(key), mapping={"state": "done", "task_id": task_id, "output": json.dumps(output)}
        )
        pipe.expire(self.keys.idempotency(key), int(ttl))
        pipe.execute()

    def abandon_side_effect(self, key: str) -> None:
        """The side effect failed: free the key so a retry may run it."""
        self.redis.delete(self.keys.idempotency(key))

    # --- recovery ----------------------------------------------------------------------------

    def expired_leases(self, now: float, limit: int) -> list[str]:
        """Members of leases and outbox entries that expired before ``now``."""
        found: list[str] = []
        for key in (self.keys.leases(), self.keys.outbox()):
            found += cast(list[str], self.redis.zrangebyscore(key, "-inf", now, start=0, num=limit))
        return list(dict.fromkeys(found))

    def recover(self, member: str, guard_seconds: float) -> tuple[str, StepMessage | None, str]:
        """Decide about a unit whose lease or outbox entry expired (see ``lua/recover.lua``).

        Returns:
            ``(verdict, message, task_id)``: ``requeue`` with the message to publish again,
            ``poison`` when the unit killed its workers too often (fail it), or ``none``.
        """
        run_id, step, item = parse_lease_member(member)
        unit = Unit(run_id, step, item)
        now = time.time()
        verdict, attempt, plan_id, task_id = (
            str(v)
            for v in self.scripts.recover(
                keys=[self.keys.run(run_id), self._unit_key(unit), self.keys.leases(), self.keys.outbox()],
                args=[
                    member,
                    now,
                    now + guard_seconds,
                    MAX_RECOVERIES,
                    "1" if item is not None else "0",
                    guard_seconds,
                    MAX_REPUBLISH_WAIT,
                ],
            )
        )
        if verdict == "none":
            return verdict, None, ""
        message = StepMessage(run_id=run_id, plan_id=plan_id, step=step, attempt=max(int(attempt), 1), item=item)
        return verdict, message, task_id

    def reset_for_retry(self, plan: Plan, run_id: str) -> tuple[list[str], list[str]]:
        """Reset every step that did not succeed; returns the steps to start and those to skip.

        Succeeded steps keep status and output, and count as arrived at their dependents' joins.
        """
        names = list(plan.steps)
        states = self.step_states(run_id, names)
        kept = {s for s in names if states[s].get("status") == StepStatus.SUCCEEDED.value}
        reset = [s for s in names if s not in kept]
        pipe = self.redis.pipeline(transaction=True)
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
        pipe.hset(self.keys.run(run_id), mapping={"status": "running", "remaining": len(reset), "failed": 0})
        pipe.hdel(self.keys.run(run_id), "finished_at")
        pipe.execute()
        start: list[str] = []
        skip: list[str] = []
        for step in reset:
            spec = plan.steps[step]
            if all(n in kept for n in spec.needs):
                decision = decide(spec.trigger_rule, len(spec.needs), 0, 0, len(spec.needs))
                (start if decision is Decision.FIRE else skip).append(step)
        return start, skip

    def _unit_key(self, unit: Unit) -> str:
        if unit.item is None:
            return self.keys.step(unit.run_id, unit.step)
        return self.keys.item(unit.run_id, unit.step, unit.item)


def _public_status(status: str) -> str:
    # 'skipping' is the instant between a join deciding to skip a step and the step ending skipped.
    return StepStatus.SKIPPED.value if status == "skipping" else status


def _step_record(state: Mapping[str, str], output: str | None) -> StepRecord:
    return StepRecord(
        status=StepStatus(_public_status(state.get("status", "pending"))),
        attempts=int(state.get("attempts", 0)),
        task_id=state.get("task_id") or None,
        worker=state.get("worker") or None,
        started_at=state.get("started_at") or None,
        finished_at=state.get("finished_at") or None,
        output=json.loads(output) if output is not None else None,
        error=StepError.model_validate_json(state["error"]) if state.get("error") else None,
        items=int(state["items"]) if state.get("items") else None,
        items_done=int(state["items_done"]) if state.get("items_done") else None,
    )
