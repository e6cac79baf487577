"""The step runner: one delivery of one step (or ``for_each`` item), from claim to outcome.

A delivery first claims its unit in the run store. Only the delivery that wins the claim runs
the user's task; redeliveries and duplicates are dropped. The task is called through a
:class:`TaskCaller` (the worker package calls the registered Celery task in process), under the
step's policy: ``when`` and ``for_each`` decided here, retries by the coordinator, outputs
checked to be JSON, side effects guarded by their idempotency key. Nothing here knows Celery.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Protocol

from orchestrator.definition.expressions import Expression, evaluate, parse_expression
from orchestrator.definition.params import json_problem
from orchestrator.definition.references import parse_template, render
from orchestrator.engine.context import RunContext, StepReads, step_reads
from orchestrator.engine.coordinator import Coordinator
from orchestrator.engine.durability import until_recorded
from orchestrator.engine.idempotency import IdempotencyGuard
from orchestrator.engine.observers import Change
from orchestrator.engine.ports import LeaseHolder, RunStore
from orchestrator.engine.records import EventKind, Outcome, StepError
from orchestrator.engine.unit import StepMessage
from orchestrator.engine.verdicts import ClaimVerdict
from orchestrator.errors import (
    Deferred,
    ExpressionError,
    InvalidMessage,
    MissingValue,
    NonSerializableOutput,
    PlanNotFound,
    ServiceUnavailable,
    TaskError,
)
from orchestrator.plan.compiler import Plan
from orchestrator.plan.policy import RetryPolicy

log = logging.getLogger(__name__)
MAX_ERROR_MESSAGE = 2000
KEY_WAIT = 2.0
"""Seconds a delivery waits in process for an idempotency key another execution holds, before it defers."""


class TaskCaller(Protocol):
    """Runs a registered task in this process and returns its result.

    Raises:
        UnknownTask: no task of that name is registered here.
        StepTimeout: the attempt's soft time limit struck.
        Exception: whatever the task raised.
    """

    def __call__(self, task: str, args: dict[str, Any]) -> Any: ...


class StepRunner:
    """Runs deliveries of the step task.

    Args:
        store: The run store.
        coordinator: Ends steps, retries them and advances their runs.
        leases: Keeps the claimed unit's lease alive while it runs.
        call: Runs a user task by name.
        lease_seconds: Length of a claim's lease.
        key_ttl: How long an idempotency key's record (and output) is kept.
        is_shutdown: Whether an exception is the process's business, not the step's (a shutdown
            signal, Ctrl-C): it propagates, and the message is handed back. Any other exception,
            ``SystemExit`` from a task's own ``sys.exit()`` too, ends the attempt.
    """

    def __init__(
        self,
        store: RunStore,
        coordinator: Coordinator,
        leases: LeaseHolder,
        call: TaskCaller,
        *,
        lease_seconds: float,
        key_ttl: float,
        is_shutdown: Callable[[BaseException], bool] = lambda exc: isinstance(exc, KeyboardInterrupt | GeneratorExit),
    ) -> None:
        self.store = store
        self.coordinator = coordinator
        self.leases = leases
        self.call = call
        self.lease_seconds = lease_seconds
        self.is_shutdown = is_shutdown
        self.idempotency = IdempotencyGuard(
            store.side_effects, ttl=key_ttl, wait=min(KEY_WAIT, lease_seconds), defer=lease_seconds / 2
        )
        self._reads: dict[tuple[str, str, bool], StepReads] = {}

    def run(self, message: StepMessage, task_id: str, worker: str) -> None:
        """Claim the message's unit and, if this delivery won it, run it to its outcome.

        Raises:
            InvalidMessage: the message names no plan, step or item of its run; nothing ran.
        """
        plan = self._plan(message)
        unit = message.unit
        claim, inputs = self.store.steps.claim_and_read(
            message, task_id, worker, self.lease_seconds, self._reads_of(plan, message)
        )
        if claim.verdict is ClaimVerdict.INVALID:
            raise InvalidMessage(f"{unit} (attempt {message.attempt}): {claim.detail}")
        if claim.verdict is ClaimVerdict.POISON:
            self.coordinator.lost(plan, message, task_id, int(claim.detail))
            return
        if not claim.ok or inputs is None:
            log.info(
                "dropping delivery %s of %s (attempt %s): %s %s",
                task_id,
                unit,
                message.attempt,
                claim.verdict,
                claim.detail,
            )
            return
        if self.coordinator.observe:
            self.coordinator.observe(
                Change(
                    EventKind.STARTED,
                    unit.run_id,
                    plan.workflow,
                    unit.step,
                    unit.item,
                    message.attempt,
                    task_id,
                    worker,
                    lag=None if message.due is None else time.time() - message.due,
                )
            )
        with self.leases.hold(unit):
            try:
                context = (RunContext.of if message.item is None else RunContext.of_item)(message.run_id, inputs)
                self._execute(plan, message, task_id, context)
            except Deferred as deferred:
                self.coordinator.defer(plan, message, task_id, deferred)
            except ServiceUnavailable:
                # Redis went away before the task ran: nothing happened that needs a record. The
                # unit stays claimed; once Redis is back its lease expires and it is run again.
                raise
            except BaseException as exc:  # sys.exit() in a task ends its attempt, not its worker
                if self.is_shutdown(exc):
                    raise
                self.failed(plan, message, task_id, exc)

    def _plan(self, message: StepMessage) -> Plan:
        """The message's plan, checked to hold its step (and item, and attempt).

        Raises:
            InvalidMessage: it does not.
        """
        try:
            plan = self.store.runs.plan(message.plan_id)
        except PlanNotFound:
            raise InvalidMessage(f"{message.unit}: no plan {message.plan_id!r} in the run store") from None
        step = plan.steps.get(message.step)
        if step is None:
            raise InvalidMessage(f"{message.unit}: workflow {plan.workflow!r} has no step {message.step!r}")
        if message.item is not None and not step.fan_out:
            raise InvalidMessage(f"{message.unit}: step {message.step!r} has no items (it is not a for_each step)")
        if message.attempt > step.policy.retry.max_attempts:
            raise InvalidMessage(
                f"{message.unit}: attempt {message.attempt} of a step with {step.policy.retry.max_attempts}"
            )
        return plan

    def failed(self, plan: Plan, message: StepMessage, task_id: str, exc: BaseException) -> None:
        """Record a failed attempt: retried or failed by the step's policy."""
        error, retryable = failure(exc, plan.steps[message.step].policy.retry)
        verdict = until_recorded(
            lambda: self.coordinator.attempt_failed(plan, message, task_id, error, retryable, exc), f"{message.unit}"
        )
        log.debug("step %s attempt %s failed (%s): %s", message.unit, message.attempt, verdict, error.message)

    def _execute(self, plan: Plan, message: StepMessage, task_id: str, context: RunContext) -> None:
        spec = plan.definition.steps[message.step]
        unit = message.unit
        if message.item is None and spec.when is not None and not _holds(_expression(spec.when), context):
            self.coordinator.finish(plan, unit, task_id, Outcome.skipped(), epoch=message.epoch)
            return
        if message.item is None and spec.for_each is not None:
            self.coordinator.fan_out(plan, message, task_id, _for_each_items(spec.for_each, context))
            return
        args = render(spec.args, context.resolve)

        def run_task() -> Any:
            return checked(self.call(spec.task, args), spec.task)

        if spec.idempotency_key is None:
            output = run_task()
        else:
            key = str(render(spec.idempotency_key, context.resolve))
            output = self.idempotency.run(spec.task, key, unit, task_id, run_task)
        # The task ran: its outcome must be recorded, through a store outage too (or it runs again).
        if message.item is not None:
            until_recorded(lambda: self.coordinator.item_succeeded(plan, message, task_id, output), f"{unit}")
        else:
            until_recorded(
                lambda: self.coordinator.finish(
                    plan, unit, task_id, Outcome.succeeded(output), attempt=message.attempt, epoch=message.epoch
                ),
                f"{unit}",
            )

    def _reads_of(self, plan: Plan, message: StepMessage) -> StepReads:
        """What this delivery reads with its claim; plans are immutable, so cached by plan id."""
        key = (plan.plan_id, message.step, message.item is not None)
        reads = self._reads.get(key)
        if reads is None:
            if len(self._reads) > 10_000:
                self._reads.clear()
            reads = self._reads[key] = step_reads(plan.definition.steps[message.step], item=message.item is not None)
        return reads


def failure(exc: BaseException, policy: RetryPolicy) -> tuple[StepError, bool]:
    """The error recorded for an attempt that raised ``exc``, and whether the policy retries it.

    The one place that decides: a :class:`~orchestrator.errors.TaskError` whose type fixes
    ``retryable`` is taken at its word; anything else (a ``StepTimeout``, the task's own
    exceptions) is retried when its class or a base class is named in ``retry.on``.
    """
    fixed = exc.retryable if isinstance(exc, TaskError) else None
    retryable = fixed if fixed is not None else policy.retries(error_names(exc))
    return StepError(type=type(exc).__name__, message=describe(exc)), retryable


def describe(exc: BaseException) -> str:
    """``str(exc)`` as the run record can hold it: cut short, valid UTF-8, never raising."""
    try:
        text = str(exc)
    except BaseException as inner:  # an exception whose __str__ raises
        text = f"<its message cannot be shown: {type(inner).__name__} in __str__>"
    if isinstance(exc, SystemExit):
        text = f"the task called sys.exit({text})"
    return text[:MAX_ERROR_MESSAGE].encode("utf-8", "backslashreplace").decode("utf-8")


def error_names(exc: BaseException) -> list[str]:
    """The names ``retry.on`` may use for ``exc``: its class and every base, plain and qualified."""
    names: list[str] = []
    for cls in type(exc).__mro__:
        names += [cls.__name__, f"{cls.__module__}.{cls.__qualname__}"]
    return names


def checked(output: Any, name: str) -> Any:
    """The output as JSON data (tuples become lists), or NonSerializableOutput.

    ``allow_nan=False``: NaN and infinities are not JSON; ``json.dumps`` would write them and every
    reader downstream would get a value no JSON parser but Python's reads. RecursionError: nesting
    deeper than the encoder goes. :func:`json_problem`: nesting the run record's serializer refuses
    (``status --json`` would crash on the stored output).
    """
    if output is None:  # what a task run for its effect returns
        return None
    try:
        value = json.loads(json.dumps(output, allow_nan=False))  # normalise tuples to lists, as readers see it
    except (TypeError, ValueError, RecursionError) as exc:
        raise NonSerializableOutput(f"task {name!r} returned a value that is not JSON: {exc}") from None
    if (problem := json_problem(value)) is not None:
        raise NonSerializableOutput(f"task {name!r} returned a value that is not JSON: {problem}")
    return value


@lru_cache(maxsize=4096)
def _expression(text: str) -> Expression:
    return parse_expression(text)


def _holds(expression: Expression, context: RunContext) -> bool:
    try:
        return evaluate(expression, context.resolve)
    except ExpressionError as exc:
        raise MissingValue(str(exc)) from None


def _for_each_items(text: str, context: RunContext) -> list[Any]:
    ref = parse_template(text).single
    assert ref is not None  # validation guarantees one reference
    value = context.resolve(ref)
    if not isinstance(value, list):
        raise MissingValue(f"for_each {text} must name a list, but it is {type(value).__name__}")
    return value
