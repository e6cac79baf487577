"""The transitions of steps and ``for_each`` items in Redis, each one atomic.

Claiming a unit, ending it (and advancing its dependents' joins), scheduling a retry and ending an
item are Lua scripts (``lua/``), so two deliveries of one message, or two workers ending two needs
of one step at the same moment, cannot both win. The rest are plain writes guarded by those.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any, cast

from redis.client import Pipeline

from orchestrator.engine.context import StepInputs, StepReads
from orchestrator.engine.ports import Outbound
from orchestrator.engine.records import Outcome, StepError, StepStatus, now_iso
from orchestrator.engine.unit import StepMessage, Unit
from orchestrator.engine.verdicts import Claim, ClaimVerdict, CompleteVerdict, Completion, ItemEnd, ItemVerdict
from orchestrator.errors import RunNotFound
from orchestrator.plan.compiler import Plan
from orchestrator.store.connections import all_reachable
from orchestrator.store.scripts import Part, loaded, queue

MAX_RECOVERIES = 5
"""Deaths of a unit's executions after which it is poison: failed as WorkerLost, not run again."""
FAN_OUT_BATCH = 1000
"""Items written per command when a ``for_each`` step fans out."""
HISTORY_LIMIT: dict[str, Any] = {"maxlen": 100_000, "approximate": True}
"""How many events a run's history keeps (the scripts keep the same, ``lua/lib.lua``)."""


def event(at: str, kind: str, **fields: str) -> dict[Any, Any]:
    """The fields of a history entry, as the scripts write them (``lua/lib.lua``'s ``record``)."""
    return {"at": at, "event": kind, **fields}


WATCHDOG_LEASES = 4
"""A fanned-out step's watchdog lasts this many leases past its items' last claim or end: a fan-out
with no progress for that long has its items published again (``lua/recover.lua``)."""


@all_reachable
class RedisSteps(Part):
    """:class:`~orchestrator.engine.ports.Steps` on Redis."""

    # --- claiming ------------------------------------------------------------------------------

    def claim_and_read(
        self, message: StepMessage, task_id: str, worker: str, lease_seconds: float, reads: StepReads
    ) -> tuple[Claim, StepInputs | None]:
        """Claim a message's unit (``lua/claim.lua``) and read what its references need, in one round trip.

        The claim's own reply carries the run's fields (and its params, when the step names them:
        a ``for_each`` item would otherwise fetch and parse them once per item, and they may hold
        the items themselves), so a step that refers to nothing upstream costs one EVALSHA. The
        other reads (upstream outputs and statuses, an item's input) are queued after the claim on
        the same pipeline, so they see the state the claim left; when the claim fails they are
        simply not used.

        Raises:
            RunNotFound: the claim succeeded but the run's hash has no workflow (a run hash
                written by hand, or half-deleted: the script reads it in the same atomic call).
        """
        unit = message.unit
        now = time.time()
        shard = self.keys.shard(unit.run_id)
        keys = [
            self.keys.run(unit.run_id),
            self.keys.unit(unit),
            shard.leases(),
            self.keys.unit(unit.parent),
            shard.outbox(),
            self.keys.history(unit.run_id),
        ]
        args: list[str | int | float] = [
            task_id,
            message.attempt,
            worker,
            now_iso(),
            now,
            now + lease_seconds,
            str(unit),
            MAX_RECOVERIES,
            "" if unit.item is None else unit.item,
            message.plan_id,
            message.epoch,
            str(unit.parent),
            now + WATCHDOG_LEASES * lease_seconds,
            unit.step if unit.item is None else "",
            "1" if reads.params else "",
        ]
        item = reads.item and unit.item is not None

        def pipelined() -> list[Any]:
            pipe = self.redis.pipeline(transaction=False)
            queue(pipe, self.scripts.claim, keys, args)
            self._queue_reads(pipe, unit, reads)
            return pipe.execute()

        if reads.outputs or reads.statuses or item:
            raw = loaded(self.redis, pipelined, self.scripts.claim)
        else:  # nothing to read beside the claim's own reply: one EVALSHA
            raw = [self.scripts.claim(keys=keys, args=args)]
        verdict, detail, *context = raw[0]
        claim = Claim(ClaimVerdict(verdict), str(detail))
        if not claim.ok:
            return claim, None
        return claim, self._parse_reads(unit.run_id, context, raw[1:], reads, item=item)

    def _queue_reads(self, pipe: Pipeline, unit: Unit, reads: StepReads) -> None:
        run_id = unit.run_id
        if reads.item and unit.item is not None:
            pipe.lindex(self.keys.item_inputs(run_id, unit.step), unit.item)
        if reads.outputs:
            outputs = [self.keys.output(run_id, s) for s in reads.outputs]
            pipe.execute_command("MGET", *outputs)  # type: ignore[no-untyped-call] # see scripts.queue
        for step in reads.statuses:
            pipe.hget(self.keys.step(run_id, step), "status")

    def _parse_reads(
        self, run_id: str, context: list[Any], raw: list[Any], reads: StepReads, *, item: bool
    ) -> StepInputs:
        workflow, created, logical, params = context
        if workflow is None:
            raise RunNotFound(run_id)
        item_json = raw[0] if item else None
        raw = raw[int(item) :]
        outputs = raw[0] if reads.outputs else []
        values = {s: json.loads(v) for s, v in zip(reads.outputs, outputs, strict=True) if v is not None}
        states = dict(zip(reads.statuses, raw[bool(reads.outputs) :], strict=True))
        return StepInputs(
            workflow=workflow,
            created_at=created,
            params_json=params or "{}",
            outputs=values,
            statuses={k: v or StepStatus.PENDING.value for k, v in states.items()},
            logical_date=logical or None,
            item_json=item_json,
        )

    # --- ending ---------------------------------------------------------------------------------

    def complete(
        self,
        plan: Plan,
        unit: Unit,
        task_id: str,
        outcome: Outcome,
        *,
        lease_seconds: float,
        outbound: Mapping[str, Outbound] | None = None,
        epoch: int | None = None,
    ) -> Completion:
        """End a step and advance its dependents' joins in one atomic script (``lua/complete.lua``).

        Args:
            plan: The run's plan (dependents and their trigger rules).
            unit: The step (``item`` None).
            task_id: The claiming execution, or ``""`` for the orchestrator's own transitions.
            outcome: succeeded (with its output), failed (with its error) or skipped.
            lease_seconds: Publish guard of the dependents that fire.
            outbound: Messages of dependents (by name) built for run ``epoch``, the broker being
                this Redis: those that fire are pushed onto their queues by the script itself
                (``Completion.pushed``), unless the run was retried since (its epoch moved on).
            epoch: The run epoch ``outbound`` was built for.
        """
        run_id, step = unit.run_id, unit.step
        outbound = outbound or {}
        shard = self.keys.shard(run_id)
        keys = [
            self.keys.run(run_id),
            self.keys.step(run_id, step),
            self.keys.output(run_id, step),
            shard.leases(),
            shard.outbox(),
            self.keys.history(run_id),
            shard.expiring(),
            shard.archiving(),
        ]
        args: list[Any] = [
            task_id,
            outcome.status.value,
            now_iso(),
            outcome.output_json(),
            outcome.error_json(),
            str(unit),
            step,
            time.time() + lease_seconds,
            "" if epoch is None or not outbound else epoch,
        ]
        for name in plan.steps[step].dependents:
            dependent = plan.steps[name]
            message = outbound.get(name)
            # Without a message the queue is not used: the step's own key stands in (on a cluster
            # every key named must be in the run's slot, and a broker's list is not).
            queue = self.keys.queue_list(message.queue, message.priority) if message else self.keys.step(run_id, name)
            keys += [self.keys.join(run_id, name), self.keys.step(run_id, name), queue]
            args += [
                dependent.trigger_rule.value,
                len(dependent.needs),
                name,
                str(Unit(run_id, name)),
                message.payload if message else "",
            ]
        verdict, run_status, run_epoch, *names = (str(r) for r in self.scripts.complete(keys=keys, args=args))
        if verdict != CompleteVerdict.OK:
            return Completion(CompleteVerdict(verdict), run_status)
        first = names.index("|")
        second = names.index("|", first + 1)
        return Completion(
            CompleteVerdict.OK,
            run_status,
            fired=tuple(names[:first]),
            skipped=tuple(names[first + 1 : second]),
            epoch=int(run_epoch),
            pushed=tuple(names[second + 1 :]),
        )

    def schedule_retry(
        self, unit: Unit, task_id: str, error: StepError, guard_until: float, *, counts: bool = True
    ) -> bool:
        """Record an attempt that will run again (``lua/retry.lua``); False if this execution lost the unit.

        With ``counts`` False the attempt is handed back uncounted (a deferral): its message is
        published again for the same attempt number.
        """
        result = self.scripts.retry(
            keys=[self.keys.unit(unit), self.keys.shard(unit.run_id).leases(), self.keys.history(unit.run_id)],
            args=[
                task_id,
                error.model_dump_json(),
                now_iso(),
                guard_until,
                str(unit),
                "1" if counts else "0",
                unit.step if unit.item is None else "",
            ],
        )
        return bool(result)

    # --- publishing guards ----------------------------------------------------------------------

    def mark_queued(self, run_id: str, steps: Sequence[str], lease_seconds: float) -> None:
        """Mark steps queued before their messages are published; the outbox guards them until claimed."""
        expiry = time.time() + lease_seconds
        at = now_iso()
        outbox = self.keys.shard(run_id).outbox()
        pipe = self.redis.pipeline(transaction=False)
        for step in steps:
            pipe.hset(self.keys.step(run_id, step), "status", StepStatus.QUEUED.value)
            pipe.zadd(outbox, {str(Unit(run_id, step)): expiry})
            pipe.xadd(self.keys.history(run_id), event(at, "queued", step=step), **HISTORY_LIMIT)
        pipe.execute()

    # --- for_each items -------------------------------------------------------------------------

    def start_fan_out(self, unit: Unit, items: Sequence[Any]) -> None:
        """Record the items of a ``for_each`` step (in pipelined batches) before their messages go out.

        A second fan-out of the same step (after a crash) rewrites the same inputs; items that
        already ended keep their outputs and their claims drop the repeated messages.
        """
        inputs = self.keys.item_inputs(unit.run_id, unit.step)
        pipe = self.redis.pipeline(transaction=False)
        pipe.delete(inputs)
        for start in range(0, len(items), FAN_OUT_BATCH):
            pipe.rpush(inputs, *(json.dumps(item) for item in items[start : start + FAN_OUT_BATCH]))
            if len(pipe) >= 4:
                pipe.execute()
        pipe.hset(self.keys.step(unit.run_id, unit.step), "items", len(items))
        pipe.hsetnx(self.keys.step(unit.run_id, unit.step), "items_done", 0)
        pipe.execute()

    def fanned_out(self, unit: Unit, lease_seconds: float) -> None:
        """The items' messages are out: the step's lease gives way to its fan-out watchdog.

        The watchdog (the step's outbox entry) is renewed by each item claimed or ended; should
        the fan-out make no progress for :data:`WATCHDOG_LEASES` leases, its items are published
        again (a worker that died holding item messages it had not claimed yet loses nothing).
        """
        shard = self.keys.shard(unit.run_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(shard.leases(), str(unit))
        pipe.zadd(shard.outbox(), {str(unit): time.time() + WATCHDOG_LEASES * lease_seconds})
        pipe.execute()

    def complete_item(self, unit: Unit, task_id: str, outcome: Outcome, *, lease_seconds: float) -> ItemEnd:
        """End one item (``lua/item.lua``), renewing its step's fan-out watchdog."""
        assert unit.item is not None
        shard = self.keys.shard(unit.run_id)
        verdict, step_task = self.scripts.item(
            keys=[
                self.keys.step(unit.run_id, unit.step),
                self.keys.unit(unit),
                self.keys.item_outputs(unit.run_id, unit.step),
                shard.leases(),
                shard.outbox(),
            ],
            args=[
                task_id,
                outcome.status.value,
                now_iso(),
                outcome.output_json(),
                outcome.error_json(),
                unit.item,
                str(unit),
                str(unit.parent),
                time.time() + WATCHDOG_LEASES * lease_seconds,
            ],
        )
        return ItemEnd(ItemVerdict(verdict), str(step_task))

    def item_error(self, unit: Unit) -> StepError | None:
        """The error of the first failed item of a ``for_each`` step, if one failed."""
        raw = self.redis.hget(self.keys.step(unit.run_id, unit.step), "item_error")
        return StepError.model_validate_json(cast(str, raw)) if raw else None

    def item_outputs(self, unit: Unit) -> list[Any]:
        """The outputs of a ``for_each`` step's items, in item order."""
        step = self.keys.step(unit.run_id, unit.step)
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(step, "items")
        pipe.hgetall(self.keys.item_outputs(unit.run_id, unit.step))
        count, raw = pipe.execute()
        outputs = cast(dict[str, str], raw)
        return [json.loads(outputs[str(i)]) if str(i) in outputs else None for i in range(int(count or 0))]
