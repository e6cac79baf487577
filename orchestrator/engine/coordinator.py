"""The coordinator: submits runs and moves them forward as steps end.

It holds no state of its own: everything is in the run store, and messages go out through a
dispatcher (both are the protocols of :mod:`orchestrator.engine.ports`). Workers use the same class
to report a step's end, so a run advances wherever its last step finished, with no central
process in the path.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.definition.models import Policy, Workflow
from orchestrator.definition.params import resolve_params
from orchestrator.engine.observers import Change, Observers
from orchestrator.engine.ports import RUN_RETENTION, Delivery, Dispatcher, NewRun, RunStore
from orchestrator.engine.records import EventKind, Outcome, RunRecord, RunStatus, StepError, Trigger
from orchestrator.engine.unit import StepMessage, Unit
from orchestrator.engine.verdicts import CancelVerdict, CompleteVerdict, Completion, ItemVerdict, RecoverVerdict
from orchestrator.errors import Deferred, RunStateError, ServiceUnavailable, WorkerLost
from orchestrator.plan.cache import PlanCache
from orchestrator.plan.compiler import Plan

log = logging.getLogger(__name__)
FAN_OUT_BATCH = 1000
"""Item messages built and published at a time when a ``for_each`` step fans out."""


@dataclass(frozen=True)
class Submitted:
    """A submission's answer: the run, and whether this call created it (an idempotency key's repeat did not)."""

    run_id: str
    created: bool


class Coordinator:
    """Submits, advances, cancels, retries and recovers runs.

    Args:
        store: The run store.
        dispatcher: Publishes step messages.
        base_policy: The settings layer of step policy (queue, timeout, retry defaults).
        lease_seconds: How long a claim or a publish guard lives without renewal.
        rand: Source of jitter in ``[0, 1)``; injectable for tests.
        observers: Told of every state change this coordinator makes (logs, metrics, Sentry).
        archive: Mark the runs it submits for the durable history (``ORCH_HISTORY_URL`` is set).
        retention: Seconds a finished run's keys are kept (``ORCH_RUN_RETENTION``) unless its
            workflow says (``retention:``).
    """

    def __init__(
        self,
        store: RunStore,
        dispatcher: Dispatcher,
        *,
        base_policy: Policy,
        lease_seconds: float,
        rand: Callable[[], float] = random.random,
        observers: Observers | None = None,
        archive: bool = False,
        retention: float = RUN_RETENTION,
    ) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.base_policy = base_policy
        self.lease_seconds = lease_seconds
        self.rand = rand
        self.observe = observers if observers is not None else Observers()
        self.archive = archive
        self.retention = retention
        self.plans = PlanCache(base_policy)

    # --- runs --------------------------------------------------------------------------------

    def compile(self, workflow: Workflow) -> Plan:
        """The workflow's plan, compiled once per definition (:mod:`orchestrator.plan.cache`)."""
        return self.plans.plan(workflow)

    def submit(
        self,
        workflow: Workflow,
        params: Mapping[str, Any] | None = None,
        *,
        trigger: Trigger = Trigger.CLI,
        started_by: str | None = None,
        idempotency_key: str | None = None,
        logical_date: str | None = None,
    ) -> Submitted:
        """Check params, compile (once per definition), record and dispatch a run.

        A second submission with the same ``idempotency_key`` for the same workflow (atomically,
        however the calls race) answers with the first run, ``created`` False, and records nothing.
        ``logical_date`` (ISO-8601, a schedule's tick) is the moment the run is for: ``${run.date}``
        is its date; without it, the run's creation.

        Raises:
            InvalidParams: params do not match the declaration; nothing is recorded.
            ServiceUnavailable: the store cannot be reached (nothing is recorded), or the broker
                cannot: the run is recorded (its id is on the error) and the outbox publishes its
                first steps once the broker is back.
        """
        resolved = resolve_params(workflow.params, params or {})
        plan = self.compile(workflow)
        run = NewRun(
            uuid.uuid4().hex,
            plan,
            resolved,
            trigger,
            self.lease_seconds,
            started_by,
            logical_date=logical_date,
            archive=self.archive,
            retention=self.retention if workflow.retention is None else workflow.retention,
        )
        run_id, roots, pushed = self._create(run, idempotency_key)
        created = roots is not None
        if created and self.observe:
            self.observe(
                Change(EventKind.SUBMITTED, run_id, plan.workflow, trigger=trigger.value, started_by=started_by)
            )
        if roots and not pushed:  # queued and in the outbox already: publish them
            try:
                self.dispatcher.send(roots)
            except ServiceUnavailable as exc:
                raise ServiceUnavailable(
                    f"{exc}; run {run_id} is recorded and its first steps go out once the broker is back "
                    "(any worker's sweeper publishes them)",
                    run_id=run_id,
                ) from exc
        if roots:
            self._queued(plan, [d.message for d in roots])
        return Submitted(run_id, created)

    def get(self, run_id: str) -> RunRecord:
        return self.store.runs.get(run_id)

    def cancel(self, run_id: str, by: str) -> RunRecord:
        """Cancel a run: unfinished steps end cancelled, queued messages are revoked.

        Args:
            run_id: The run.
            by: Who cancels it (``user:NAME``, ``token:NAME``): recorded in its history.

        Raises:
            RunNotFound: no such run.
            RunStateError: the run has already ended.
        """
        plan, _ = self.store.runs.plan_of(run_id)
        cancellation = self.store.runs.cancel(run_id, list(plan.steps), by)
        if cancellation.verdict is CancelVerdict.FINISHED:
            raise RunStateError(f"run {run_id} has already ended; there is nothing to cancel")
        if cancellation.verdict is CancelVerdict.OK:
            self.dispatcher.revoke(cancellation.task_ids)
            self.observe(Change(EventKind.CANCELLED, run_id, plan.workflow, started_by=by))
        return self.get(run_id)

    def retry(self, run_id: str, by: str) -> RunRecord:
        """Run a finished run's failed, cancelled and unfinished steps again; succeeded steps keep their outputs.

        Args:
            run_id: The run.
            by: Who retries it: recorded in its history.

        Raises:
            RunNotFound: no such run.
            RunStateError: the run is still running.
        """
        plan, status = self.store.runs.plan_of(run_id)
        if not RunStatus(status).finished:
            raise RunStateError(f"run {run_id} is {status}; cancel it first or wait for it to finish")
        reset = self.store.runs.reset_for_retry(plan, run_id, by)
        self.observe(Change(EventKind.RETRIED, run_id, plan.workflow, started_by=by))
        if reset.start:
            self.store.steps.mark_queued(run_id, reset.start, self.lease_seconds)
            self._send(plan, StepMessage.of_steps(run_id, plan.plan_id, reset.start, reset.epoch))
        for step in reset.skip:
            self.finish(plan, Unit(run_id, step), "", Outcome.skipped(), epoch=reset.epoch)
        return self.get(run_id)

    # --- step lifecycle (called by workers) ----------------------------------------------------

    def finish(
        self,
        plan: Plan,
        unit: Unit,
        task_id: str,
        outcome: Outcome,
        *,
        attempt: int | None = None,
        cause: BaseException | None = None,
        epoch: int | None = None,
    ) -> Completion:
        """End a step, dispatch the dependents that fire and skip those whose rule can no longer hold.

        Args:
            attempt: The attempt that ended it, and ``cause`` the exception that failed it, for observers.
            epoch: The run epoch the ending execution's message was sent in, when known: the
                dependents' messages are built for it, and when the broker is the store's Redis
                the store pushes those that fire in the same atomic call that records the end.
        """
        completion = self._complete(plan, unit, task_id, outcome, epoch)
        if completion.verdict is CompleteVerdict.OK and self.observe:
            kind = EventKind(outcome.status.value)
            self.observe(
                Change(
                    kind,
                    unit.run_id,
                    plan.workflow,
                    unit.step,
                    None,
                    attempt,
                    task_id or None,
                    error=outcome.error,
                    cause=cause,
                )
            )
        pending = [completion]
        while pending:
            current = pending.pop()
            if current.verdict is not CompleteVerdict.OK:
                continue
            if current.fired:
                fired = StepMessage.of_steps(unit.run_id, plan.plan_id, current.fired, current.epoch)
                pushed = set(current.pushed)
                self._publish(plan, [m for m in fired if m.step not in pushed])
                self._queued(plan, fired)
            for step in current.skipped:
                skipped = self._complete(plan, Unit(unit.run_id, step), "", Outcome.skipped(), current.epoch)
                if skipped.verdict is CompleteVerdict.OK:
                    self.observe(Change(EventKind.SKIPPED, unit.run_id, plan.workflow, step))
                pending.append(skipped)
            if current.run_finished:
                self.observe(Change(EventKind.FINISHED, unit.run_id, plan.workflow, status=current.run_status))
                self._run_hook(plan, unit.run_id, current.run_status)
        return completion

    def attempt_failed(
        self,
        plan: Plan,
        message: StepMessage,
        task_id: str,
        error: StepError,
        retryable: bool,
        cause: BaseException | None = None,
    ) -> str:
        """Handle a failed attempt: retry it with backoff if the policy allows, else fail the step.

        ``cause`` is the exception raised in this process, if one was (observers report it).

        Returns:
            ``"retrying"``, ``"failed"``, or ``"stale"`` when this execution no longer owned the step.
        """
        policy = plan.steps[message.step].policy.retry
        unit = message.unit
        if retryable and message.attempt < policy.max_attempts:
            delay = policy.delay_for(message.attempt, self.rand())
            guard = time.time() + delay + self.lease_seconds
            if not self.store.steps.schedule_retry(unit, task_id, error, guard):
                return "stale"
            self.observe(
                self._change(EventKind.RETRYING, plan, message, task_id, error=error, cause=cause, delay=delay)
            )
            self._send(plan, [message.next_attempt()], countdown=delay)
            return "retrying"
        if message.item is not None:
            ended = self.store.steps.complete_item(
                unit, task_id, Outcome.failed(error), lease_seconds=self.lease_seconds
            )
            if ended.verdict is not ItemVerdict.STALE:
                self.observe(self._change(EventKind.FAILED, plan, message, task_id, error=error, cause=cause))
            if ended.verdict is ItemVerdict.STEP_FAILED:
                self.finish(plan, unit.parent, ended.step_task_id, Outcome.failed(error), epoch=message.epoch)
            return "stale" if ended.verdict is ItemVerdict.STALE else "failed"
        completion = self.finish(
            plan, unit, task_id, Outcome.failed(error), attempt=message.attempt, cause=cause, epoch=message.epoch
        )
        return "failed" if completion.verdict is CompleteVerdict.OK else "stale"

    def defer(self, plan: Plan, message: StepMessage, task_id: str, deferred: Deferred) -> bool:
        """Hand an attempt back uncounted: the same attempt is published again after ``deferred.delay``.

        Returns:
            False when this execution no longer owned the unit (nothing is published).
        """
        error = StepError(type=Deferred.__name__, message=deferred.reason)
        guard = time.time() + deferred.delay + self.lease_seconds
        if not self.store.steps.schedule_retry(message.unit, task_id, error, guard, counts=False):
            return False
        self.observe(self._change(EventKind.DEFERRED, plan, message, task_id, error=error, delay=deferred.delay))
        self._send(plan, [message], countdown=deferred.delay)
        return True

    def lost(self, plan: Plan, message: StepMessage, task_id: str, deaths: int) -> None:
        """Fail a unit whose executions killed their workers too often (a poison step): never run it again."""
        error = StepError(type=WorkerLost.__name__, message=f"the worker running it died {deaths} times")
        self.attempt_failed(plan, message, task_id, error, retryable=False)

    def item_succeeded(self, plan: Plan, message: StepMessage, task_id: str, output: Any) -> None:
        """Record one item's output; the last item ends the step with the list of outputs."""
        ended = self.store.steps.complete_item(
            message.unit, task_id, Outcome.succeeded(output), lease_seconds=self.lease_seconds
        )
        if ended.verdict is not ItemVerdict.STALE:
            self.observe(self._change(EventKind.SUCCEEDED, plan, message, task_id))
        if ended.verdict is ItemVerdict.ALL_DONE:
            step = message.unit.parent
            outputs = self.store.steps.item_outputs(step)
            self.finish(plan, step, ended.step_task_id, Outcome.succeeded(outputs), epoch=message.epoch)

    def fan_out(self, plan: Plan, message: StepMessage, task_id: str, items: Sequence[Any]) -> None:
        """Start one message per item of a ``for_each`` step, in pipelined batches."""
        unit = message.unit
        if not items:
            self.finish(plan, unit, task_id, Outcome.succeeded([]), epoch=message.epoch)
            return
        self.store.steps.start_fan_out(unit, items)
        self._send_items(plan, unit, len(items), message.epoch)
        self.store.steps.fanned_out(unit, self.lease_seconds)

    # --- recovery ----------------------------------------------------------------------------

    def recover(self, limit: int = 500) -> int:
        """Re-dispatch work whose lease expired: a dead worker's steps, or messages never published.

        Safe to run from many processes at once: each unit's recovery is one atomic script and
        claims drop duplicate messages. Returns how many units were re-dispatched.
        """
        count = 0
        for unit in self.store.leases.expired(time.time(), limit):
            recovery = self.store.leases.recover(unit, self.lease_seconds)
            message = recovery.message
            if message is None:
                continue
            plan = self.store.runs.plan(message.plan_id)
            if recovery.verdict is RecoverVerdict.SKIP:
                self.finish(plan, unit, "", Outcome.skipped(), epoch=message.epoch)
            elif recovery.verdict is RecoverVerdict.REFAN:
                log.warning("publishing the %d items of %s again: its fan-out made no progress", recovery.items, unit)
                self._send_items(plan, unit, recovery.items, message.epoch)
                count += 1
            elif recovery.verdict is RecoverVerdict.FAN_IN:
                log.warning("ending %s: all its items ended, and the execution ending it did not", unit)
                outputs = self.store.steps.item_outputs(unit)
                self.finish(plan, unit, recovery.task_id, Outcome.succeeded(outputs), epoch=message.epoch)
            elif recovery.verdict is RecoverVerdict.FAN_FAILED:
                error = self.store.steps.item_error(unit) or StepError(type="Failed", message="an item failed")
                log.warning("failing %s: an item failed, and the execution failing it did not", unit)
                self.finish(plan, unit, recovery.task_id, Outcome.failed(error), epoch=message.epoch)
            elif recovery.verdict is RecoverVerdict.POISON:
                self.lost(plan, message, recovery.task_id, recovery.deaths)
            else:
                log.debug("re-dispatching %s (attempt %s): its lease expired", unit, message.attempt)
                self.observe(self._change(EventKind.RECOVERED, plan, message, recovery.task_id or None))
                self._send(plan, [message])
                count += 1
        return count

    # --- internals -----------------------------------------------------------------------------

    def _create(self, run: NewRun, idempotency_key: str | None) -> tuple[str, list[Delivery] | None, bool]:
        """Record a run; when the broker is the store's Redis, the store pushes its roots' messages in
        the same atomic call. Returns its id, its roots' deliveries (None: an idempotency key already
        used, nothing was created), and whether the store pushed them."""
        plan = run.plan
        roots = self._roots(plan, run.run_id)
        built = self.dispatcher.outbound(roots) if roots else None
        outbound = None if built is None else dict(zip(plan.roots, built, strict=True))
        run_id, created = self.store.runs.create(run, idempotency_key, outbound)
        if not created:
            return run_id, None, False
        if outbound:
            self.dispatcher.pushed(list(outbound.values()))
        elif run_id != run.run_id:  # a new id in the idempotency key's shard (Redis Cluster)
            roots = self._roots(plan, run_id)
        return run_id, roots, outbound is not None

    @staticmethod
    def _roots(plan: Plan, run_id: str) -> list[Delivery]:
        """The first messages of a new run of ``plan``."""
        return [Delivery.of(plan, m) for m in StepMessage.of_steps(run_id, plan.plan_id, plan.roots)]

    def _complete(self, plan: Plan, unit: Unit, task_id: str, outcome: Outcome, epoch: int | None = None) -> Completion:
        """Record a step's end; with the run's ``epoch`` known, hand the store its dependents' messages to push."""
        dependents = plan.steps[unit.step].dependents
        outbound = None
        if epoch is not None and dependents:
            messages = StepMessage.of_steps(unit.run_id, plan.plan_id, dependents, epoch)
            built = self.dispatcher.outbound([Delivery.of(plan, m) for m in messages])
            outbound = None if built is None else dict(zip(dependents, built, strict=True))
        completion = self.store.steps.complete(
            plan, unit, task_id, outcome, lease_seconds=self.lease_seconds, outbound=outbound, epoch=epoch
        )
        if outbound and completion.pushed:
            self.dispatcher.pushed([outbound[name] for name in completion.pushed])
        return completion

    def _send(self, plan: Plan, messages: Sequence[StepMessage], countdown: float | None = None) -> None:
        self._publish(plan, messages, countdown)
        self._queued(plan, messages, countdown)

    def _send_items(self, plan: Plan, step: Unit, count: int, epoch: int) -> None:
        """Publish the messages of a ``for_each`` step's items, a batch at a time: a fan-out of
        100,000 items never holds more than :data:`FAN_OUT_BATCH` messages in memory."""
        for start in range(0, count, FAN_OUT_BATCH):
            units = (Unit(step.run_id, step.step, i) for i in range(start, min(start + FAN_OUT_BATCH, count)))
            self._send(plan, [StepMessage.of(item, plan.plan_id, epoch=epoch) for item in units])

    def _publish(self, plan: Plan, messages: Sequence[StepMessage], countdown: float | None = None) -> None:
        if messages:
            self.dispatcher.send([Delivery.of(plan, m, countdown) for m in messages])

    def _queued(self, plan: Plan, messages: Sequence[StepMessage], countdown: float | None = None) -> None:
        if self.observe:
            for message in messages:
                self.observe(self._change(EventKind.QUEUED, plan, message, None, delay=countdown))

    def _change(self, kind: EventKind, plan: Plan, message: StepMessage, task_id: str | None, **fields: Any) -> Change:
        """A change of the unit a message names."""
        return Change(
            kind, message.run_id, plan.workflow, message.step, message.item, message.attempt, task_id, **fields
        )

    def _run_hook(self, plan: Plan, run_id: str, status: str) -> None:
        hook = plan.on_success if status == RunStatus.SUCCEEDED else plan.on_failure
        if hook is None:
            return
        record = self.get(run_id).model_dump(mode="json")
        try:
            self.dispatcher.call(hook.task, hook.queue, {"run": record})
        except Exception:  # a hook must never fail the step that finished the run
            log.exception("could not send the %s hook of run %s", status, run_id)
