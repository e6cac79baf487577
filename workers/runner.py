"""The step task: runs one step (or one item of a ``for_each`` step) of one run.

A delivery first claims its unit in the run store. Only the delivery that wins the claim runs
the user's task; redeliveries and duplicates are acknowledged and dropped. The user's task is
called in process (any registered Celery task, a plain ``@shared_task`` too), under the step's
policy: time limits from the message, retries by the coordinator, outputs checked to be JSON.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from functools import lru_cache
from typing import Any

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from orchestrator.definition.expressions import Expression, ExpressionError, evaluate, parse_expression
from orchestrator.definition.params import json_problem
from orchestrator.definition.references import parse_template, render
from orchestrator.engine.context import RunContext, reads_params, referenced_steps
from orchestrator.engine.records import StepError, StepStatus
from orchestrator.engine.unit import StepMessage
from orchestrator.errors import MissingValue, NonSerializableOutput, TaskError, UnknownTask, WorkerLost
from orchestrator.plan.compiler import Plan
from orchestrator.store.redis_store import Context, Unit
from workers.runtime import Runtime

log = logging.getLogger(__name__)
MAX_ERROR_MESSAGE = 2000


class StepTask(Task):  # type: ignore[misc]
    """Base of the step task; the runtime is attached by the app factory."""

    runtime: Runtime


def run_step(task: StepTask, run_id: str, plan_id: str, step: str, attempt: int = 1, item: int | None = None) -> None:
    """Body of :data:`orchestrator.engine.unit.STEP_TASK`."""
    runtime = task.runtime
    message = StepMessage(run_id=run_id, plan_id=plan_id, step=step, attempt=attempt, item=item)
    task_id = str(task.request.id)
    worker = str(task.request.hostname or socket.gethostname())
    plan = runtime.store.load_plan(plan_id)
    unit = Unit(run_id, step, item)
    outputs, statuses, params = _references(plan, step, item is not None)
    claim, read = runtime.store.claim_and_read(
        unit, task_id, attempt, worker, runtime.settings.worker.lease, sorted(outputs), sorted(statuses), params
    )
    if claim.verdict == "poison":
        error = StepError(type=WorkerLost.__name__, message=f"the worker running it died {claim.detail} times")
        runtime.coordinator.attempt_failed(plan, message, task_id, error, retryable=False)
        return
    if not claim.ok:
        log.info(
            "dropping delivery %s of %s/%s (attempt %s): %s %s",
            task_id,
            run_id,
            unit.member,
            attempt,
            claim.verdict,
            claim.detail,
        )
        return
    assert read is not None
    with runtime.leases.hold(unit.member):
        try:
            _execute(task, runtime, plan, message, task_id, _context(message, read))
        except SoftTimeLimitExceeded:
            timeout = plan.steps[step].policy.soft_timeout or plan.steps[step].policy.timeout
            error = StepError(type="TimeoutError", message=f"time limit of {timeout:g}s exceeded")
            retryable = plan.steps[step].policy.retry.retries(["SoftTimeLimitExceeded", "TimeoutError"])
            runtime.coordinator.attempt_failed(plan, message, task_id, error, retryable)
        except Exception as exc:
            retryable = (
                exc.retryable
                if isinstance(exc, TaskError)
                else plan.steps[step].policy.retry.retries(_error_names(exc))
            )
            error = StepError(type=type(exc).__name__, message=str(exc)[:MAX_ERROR_MESSAGE])
            verdict = runtime.coordinator.attempt_failed(plan, message, task_id, error, retryable)
            log.info("step %s/%s attempt %s failed (%s): %s", run_id, unit.member, attempt, verdict, error.message)


def _execute(
    task: StepTask, runtime: Runtime, plan: Plan, message: StepMessage, task_id: str, context: RunContext
) -> None:
    store, coordinator = runtime.store, runtime.coordinator
    spec = plan.definition.steps[message.step]
    unit = Unit(message.run_id, message.step, message.item)
    if message.item is None and spec.when is not None and not _holds(_expression(spec.when), context):
        coordinator.finish(plan, unit, task_id, StepStatus.SKIPPED)
        return
    if message.item is None and spec.for_each is not None:
        items = _for_each_items(spec.for_each, context)
        coordinator.fan_out(plan, message, task_id, items)
        return
    if message.item is not None:
        context = context.with_item(store.item_input(message.run_id, message.step, message.item))
    args = render(spec.args, context.resolve)
    key = render(spec.idempotency_key, context.resolve) if spec.idempotency_key is not None else None
    output = _call(task, runtime, spec.task, args, key, unit, task_id)
    if message.item is not None:
        coordinator.item_succeeded(plan, message, task_id, output)
    else:
        coordinator.finish(plan, unit, task_id, StepStatus.SUCCEEDED, output=output)


def _call(task: StepTask, runtime: Runtime, name: str, args: dict[str, Any], key: Any, unit: Unit, task_id: str) -> Any:
    user_task = task.app.tasks.get(name)
    if user_task is None:
        raise UnknownTask(
            f"task {name!r} is not registered on worker {task.request.hostname}; add its module to ORCH_TASK_MODULES"
        )
    if key is None:
        return _checked(user_task(**args), name)
    ttl = runtime.settings.worker.result_expires
    verdict, recorded = _take_key(runtime, str(key), unit, task_id, ttl)
    if verdict == "done":
        log.info("idempotency key %r already ran: reusing its output", key)
        return recorded
    try:
        output = _checked(user_task(**args), name)
    except BaseException:
        runtime.store.abandon_side_effect(str(key))
        raise
    runtime.store.end_side_effect(str(key), task_id, output, ttl)
    return output


class _KeyBusy(TaskError):
    """Another live execution kept the idempotency key for longer than two leases."""

    retryable = True


def _take_key(runtime: Runtime, key: str, unit: Unit, task_id: str, ttl: float) -> tuple[str, Any]:
    """Take the key, or wait while another live execution runs the same side effect, then reuse its output."""
    deadline = time.monotonic() + 2 * runtime.settings.worker.lease
    while True:
        verdict, recorded = runtime.store.begin_side_effect(key, unit, task_id, ttl)
        if verdict != "busy":
            return verdict, recorded
        if time.monotonic() > deadline:
            raise _KeyBusy(f"idempotency key {key!r} is held by another live execution; retrying later")
        time.sleep(0.2)


def _checked(output: Any, name: str) -> Any:
    """The output as JSON data (tuples become lists), or NonSerializableOutput.

    ``allow_nan=False``: NaN and infinities are not JSON; ``json.dumps`` would write them and every
    reader downstream would get a value no JSON parser but Python's reads. RecursionError: nesting
    deeper than the encoder goes. :func:`json_problem`: nesting the run record's serializer refuses
    (``status --json`` would crash on the stored output).
    """
    try:
        value = json.loads(json.dumps(output, allow_nan=False))  # normalise tuples to lists, as readers see it
    except (TypeError, ValueError, RecursionError) as exc:
        raise NonSerializableOutput(f"task {name!r} returned a value that is not JSON: {exc}") from None
    if (problem := json_problem(value)) is not None:
        raise NonSerializableOutput(f"task {name!r} returned a value that is not JSON: {problem}")
    return value


def _context(message: StepMessage, read: Context) -> RunContext:
    return RunContext(
        run_id=message.run_id,
        run_date=read.meta["created_at"][:10],
        workflow=read.meta["workflow"],
        params=json.loads(read.meta["params"]),
        outputs=read.outputs,
        statuses=read.statuses,
    )


_REFERENCES: dict[tuple[str, str, bool], tuple[frozenset[str], frozenset[str], bool]] = {}


def _references(plan: Plan, step: str, item: bool) -> tuple[frozenset[str], frozenset[str], bool]:
    """Upstream outputs and statuses a step (or one of its items) reads, and whether it reads params.

    An item's execution does not evaluate ``for_each``: reading its source (an upstream output or
    a param, the whole list) once per item made a fan-out quadratic. Plans are immutable, so the
    answer is cached by plan id.
    """
    key = (plan.plan_id, step, item)
    if key not in _REFERENCES:
        if len(_REFERENCES) > 10_000:
            _REFERENCES.clear()
        definition = plan.definition.steps[step]
        outputs, statuses = referenced_steps(definition, for_each=not item)
        _REFERENCES[key] = (frozenset(outputs), frozenset(statuses), reads_params(definition, for_each=not item))
    return _REFERENCES[key]


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


def _error_names(exc: BaseException) -> list[str]:
    names: list[str] = []
    for cls in type(exc).__mro__:
        names += [cls.__name__, f"{cls.__module__}.{cls.__qualname__}"]
    return names
