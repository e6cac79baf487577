"""Finished runs made straight in the hot store, as a worker would leave them, queued for the history.

Each run's steps are claimed and completed through the store's own scripts (so records and
events are the real ones); then the run is put in the archive queue as the run-ending scripts
do for a run marked ``archive`` (``ZADD NX``: a no-op where they did already).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from orchestrator.definition.loader import build_workflow
from orchestrator.engine.context import StepReads
from orchestrator.engine.ports import NewRun
from orchestrator.engine.records import Outcome, StepError, Trigger
from orchestrator.engine.unit import StepMessage, Unit
from orchestrator.plan.compiler import Plan, compile_workflow
from orchestrator.store import RedisRunStore


def chain(workflow: str = "hist", steps: int = 2) -> Plan:
    """A plan of ``steps`` steps in a chain: s0 -> s1 -> ..."""
    body = {f"s{i}": {"task": "t.noop", **({"needs": [f"s{i - 1}"]} if i else {})} for i in range(steps)}
    return compile_workflow(build_workflow({"workflow": workflow, "steps": body}))


def finished_run(
    store: RedisRunStore,
    plan: Plan,
    *,
    trigger: Trigger = Trigger.API,
    started_by: str | None = "token:svc",
    fail: bool = False,
    params: dict[str, Any] | None = None,
    retries: int = 0,
    queue: bool = True,
    archive: bool = True,
) -> str:
    """A run of ``plan`` that ran to its end (its last step failed with ``fail``); its id.

    ``retries`` failed attempts come before the last step's final one (each a ``retrying`` event).
    ``queue`` adds it to the archive queue here too, in case the run-ending scripts did not.
    """
    run_id = uuid.uuid4().hex
    store.runs.create(NewRun(run_id, plan, params or {}, trigger, 60, started_by, archive=archive))
    names = list(plan.steps)
    for position, name in enumerate(names):
        unit = Unit(run_id, name)
        last = position == len(names) - 1
        for attempt in range(1, (retries if last else 0) + 2):
            task_id = f"{run_id[:8]}-{name}-{attempt}"
            message = StepMessage.of(unit, plan.plan_id, attempt)
            store.steps.claim_and_read(message, task_id, "w1@test", 60, StepReads())
            if attempt <= (retries if last else 0):
                error = StepError(type="ConnectionError", message=f"attempt {attempt} lost its connection")
                store.steps.schedule_retry(unit, task_id, error, time.time() + 60)
                continue
            if last and fail:
                outcome = Outcome.failed(StepError(type="ValueError", message="bad input \u0000 in the feed"))
            else:
                outcome = Outcome.succeeded({"step": name, "items": [position, "\u00e9", None]})
            store.steps.complete(plan, unit, task_id, outcome, lease_seconds=60)
    if queue:
        store.redis.zadd(store.keys.archiving(), {run_id: time.time()}, nx=True)
    return run_id


def retried(store: RedisRunStore, plan: Plan, run_id: str, by: str = "user:ops") -> None:
    """Retry a finished run and run its reset steps to success, as a worker would (its epoch goes up)."""
    reset = store.runs.reset_for_retry(plan, run_id, by)
    store.steps.mark_queued(run_id, reset.start, 60)
    pending = list(reset.start)
    while pending:
        name = pending.pop(0)
        unit = Unit(run_id, name)
        task_id = f"{run_id[:8]}-{name}-retried"
        store.steps.claim_and_read(
            StepMessage.of(unit, plan.plan_id, 1, epoch=reset.epoch), task_id, "w2@test", 60, StepReads()
        )
        completion = store.steps.complete(plan, unit, task_id, Outcome.succeeded("again"), lease_seconds=60)
        pending += list(completion.fired)
    store.redis.zadd(store.keys.archiving(), {run_id: time.time()}, nx=True)
