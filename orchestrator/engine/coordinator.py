"""The coordinator: submits runs and moves them forward as steps end.

It holds no state of its own: everything is in the :class:`~orchestrator.store.redis_store.RedisRunStore`,
and messages go out through a :class:`~orchestrator.broker.dispatch.Dispatcher`. Workers use the same
class to report a step's end, so a run advances wherever its last step finished, with no
central process in the path.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from orchestrator.broker.dispatch import Delivery, Dispatcher, delivery
from orchestrator.definition.models import Policy, Workflow
from orchestrator.definition.params import resolve_params
from orchestrator.engine.records import RunRecord, StepError, StepStatus, Trigger
from orchestrator.engine.unit import StepMessage
from orchestrator.errors import RunStateError, WorkerLost
from orchestrator.plan.compiler import Plan, compile_workflow
from orchestrator.store.redis_store import Completion, NewRun, RunStore, Unit

log = logging.getLogger(__name__)


class Coordinator:
    """Submits, advances, cancels, retries and recovers runs.

    Args:
        store: The run store.
        dispatcher: Publishes step messages.
        base_policy: The settings layer of step policy (queue, timeout, retry defaults).
        lease_seconds: How long a claim or a publish guard lives without renewal.
        rand: Source of jitter in ``[0, 1)``; injectable for tests.
    """

    def __init__(
        self,
        store: RunStore,
        dispatcher: Dispatcher,
        *,
        base_policy: Policy | None = None,
        lease_seconds: float = 15.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.base_policy = base_policy or Policy()
        self.lease_seconds = lease_seconds
        self.rand = rand

    # --- runs --------------------------------------------------------------------------------

    def compile(self, workflow: Workflow) -> Plan:
        return compile_workflow(workflow, self.base_policy)

    def submit(
        self,
        workflow: Workflow,
        params: Mapping[str, Any] | None = None,
        *,
        trigger: Trigger = Trigger.CLI,
        started_by: str | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Check params, compile, record and dispatch a run; returns its id.

        Raises:
            InvalidParams: params do not match the declaration; nothing is recorded.
        """
        resolved = resolve_params(workflow.params, params or {})
        plan = self.compile(workflow)
        run = NewRun(uuid.uuid4().hex, plan, resolved, trigger, started_by, publish_grace=self.lease_seconds)
        run_id, created = self.store.create_run(run, idempotency_key)
        if created:  # roots are queued and in the outbox already: publish them
            self._send(plan, [StepMessage(run_id=run_id, plan_id=plan.plan_id, step=s) for s in plan.roots])
        return run_id

    def get(self, run_id: str) -> RunRecord:
        return self.store.get_run(run_id)

    def cancel(self, run_id: str) -> RunRecord:
        """Cancel a run: unfinished steps end cancelled, queued messages are revoked.

        Raises:
            RunNotFound: no such run.
        """
        plan = self.store.load_plan(self.store.run_meta(run_id)["plan_id"])
        verdict, task_ids = self.store.cancel(run_id, list(plan.steps))
        if verdict == "ok":
            self.dispatcher.revoke(task_ids)
        return self.get(run_id)

    def retry(self, run_id: str) -> RunRecord:
        """Run a finished run's failed, cancelled and unfinished steps again; succeeded steps keep their outputs.

        Raises:
            RunNotFound: no such run.
            RunStateError: the run is still running.
        """
        meta = self.store.run_meta(run_id)
        if meta["status"] in ("pending", "running"):
            raise RunStateError(f"run {run_id} is {meta['status']}; cancel it first or wait for it to finish")
        plan = self.store.load_plan(meta["plan_id"])
        start, skip = self.store.reset_for_retry(plan, run_id)
        self._dispatch(plan, run_id, start)
        for step in skip:
            self.finish(plan, Unit(run_id, step), "", StepStatus.SKIPPED)
        return self.get(run_id)

    # --- step lifecycle (called by workers) ----------------------------------------------------

    def finish(
        self,
        plan: Plan,
        unit: Unit,
        task_id: str,
        status: StepStatus,
        *,
        output: Any = None,
        error: StepError | None = None,
    ) -> Completion:
        """End a step, dispatch the dependents that fire and skip those whose rule can no longer hold."""
        completion = self.store.complete(
            plan, unit, task_id, status, output=output, error=error, lease_seconds=self.lease_seconds
        )
        self._advance(plan, unit.run_id, completion)
        return completion

    def _advance(self, plan: Plan, run_id: str, completion: Completion) -> None:
        pending = [completion]
        while pending:
            current = pending.pop()
            if current.verdict != "ok":
                continue
            if current.fired:
                self._send(plan, [StepMessage(run_id=run_id, plan_id=plan.plan_id, step=s) for s in current.fired])
            for step in current.skipped:
                pending.append(
                    self.store.complete(
                        plan, Unit(run_id, step), "", StepStatus.SKIPPED, lease_seconds=self.lease_seconds
                    )
                )
            if current.run_finished:
                self._run_hook(plan, run_id, current.run_status)

    def attempt_failed(self, plan: Plan, message: StepMessage, task_id: str, error: StepError, retryable: bool) -> str:
        """Handle a failed attempt: retry it with backoff if the policy allows, else fail the step.

        Returns:
            ``"retrying"``, ``"failed"``, or ``"stale"`` when this execution no longer owned the step.
        """
        policy = plan.steps[message.step].policy.retry
        unit = Unit(message.run_id, message.step, message.item)
        if retryable and message.attempt < policy.max_attempts:
            delay = policy.delay_for(message.attempt, self.rand())
            guard = time.time() + delay + self.lease_seconds
            if not self.store.schedule_retry(unit, task_id, error, guard):
                return "stale"
            retry = message.model_copy(update={"attempt": message.attempt + 1})
            self._send(plan, [retry], countdown=delay)
            return "retrying"
        if message.item is not None:
            verdict, step_task = self.store.complete_item(unit, task_id, StepStatus.FAILED, error=error)
            if verdict == "step_failed":
                self.finish(plan, Unit(message.run_id, message.step), step_task, StepStatus.FAILED, error=error)
            return "failed" if verdict != "stale" else "stale"
        completion = self.finish(plan, unit, task_id, StepStatus.FAILED, error=error)
        return "failed" if completion.verdict == "ok" else "stale"

    def item_succeeded(self, plan: Plan, message: StepMessage, task_id: str, output: Any) -> None:
        """Record one item's output; the last item ends the step with the list of outputs."""
        assert message.item is not None
        unit = Unit(message.run_id, message.step, message.item)
        verdict, step_task = self.store.complete_item(unit, task_id, StepStatus.SUCCEEDED, output=output)
        if verdict == "all_done":
            state = self.store.unit_state(Unit(message.run_id, message.step))
            outputs = self.store.item_outputs(message.run_id, message.step, int(state.get("items", 0)))
            self.finish(plan, Unit(message.run_id, message.step), step_task, StepStatus.SUCCEEDED, output=outputs)

    def fan_out(self, plan: Plan, message: StepMessage, task_id: str, items: Sequence[Any]) -> None:
        """Start one message per item of a ``for_each`` step, in pipelined batches."""
        unit = Unit(message.run_id, message.step)
        if not items:
            self.finish(plan, unit, task_id, StepStatus.SUCCEEDED, output=[])
            return
        self.store.start_fan_out(unit, items)
        self._send(plan, [message.model_copy(update={"item": i, "attempt": 1}) for i in range(len(items))])
        self.store.fanned_out(unit)

    # --- recovery ----------------------------------------------------------------------------

    def recover(self, limit: int = 500) -> int:
        """Re-dispatch work whose lease expired: a dead worker's steps, or messages never published.

        Safe to run from many processes at once: each unit's recovery is one atomic script and
        claims drop duplicate messages. Returns how many units were re-dispatched.
        """
        count = 0
        for member in self.store.expired_leases(time.time(), limit):
            verdict, message, task_id = self.store.recover(member, self.lease_seconds)
            if message is None:
                continue
            plan = self.store.load_plan(message.plan_id)
            if verdict == "skip":
                self.finish(plan, Unit(message.run_id, message.step), "", StepStatus.SKIPPED)
                continue
            if verdict == "poison":
                error = StepError(type=WorkerLost.__name__, message="its worker died too many times running it")
                self.attempt_failed(plan, message, task_id, error, retryable=False)
                continue
            log.warning("re-dispatching %s (attempt %s): its lease expired", member, message.attempt)
            self._send(plan, [message])
            count += 1
        return count

    # --- internals -----------------------------------------------------------------------------

    def _dispatch(self, plan: Plan, run_id: str, steps: Sequence[str]) -> None:
        if steps:
            self.store.mark_queued(run_id, steps, self.lease_seconds)
            self._send(plan, [StepMessage(run_id=run_id, plan_id=plan.plan_id, step=s) for s in steps])

    def _send(self, plan: Plan, messages: Sequence[StepMessage], countdown: float | None = None) -> None:
        deliveries: list[Delivery] = [delivery(plan, m, countdown) for m in messages]
        self.dispatcher.send(deliveries)
        self.store.published(Unit(m.run_id, m.step) for m in messages if m.item is None)

    def _run_hook(self, plan: Plan, run_id: str, status: str) -> None:
        hook = plan.on_success if status == "succeeded" else plan.on_failure
        if hook is None:
            return
        record = self.get(run_id).model_dump(mode="json")
        try:
            self.dispatcher.call(hook.task, hook.queue, {"run": record})
        except Exception:  # a hook must never fail the step that finished the run
            log.exception("could not send the %s hook of run %s", status, run_id)
