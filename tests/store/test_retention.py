"""Retention against a real Redis: ending a run queues it for removal, the janitor removes every key of it.

Runs are driven through the store's own scripts (claims, fan-outs, completions) so their keys are
the ones workers leave; the janitor is called with a ``now`` past their retention.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from redis import Redis

from orchestrator.definition.loader import build_workflow
from orchestrator.engine.context import StepReads
from orchestrator.engine.coordinator import Coordinator
from orchestrator.engine.ports import NewRun, RunQuery
from orchestrator.engine.records import Outcome, RunStatus, StepError, Trigger
from orchestrator.engine.unit import StepMessage, Unit
from orchestrator.errors import RunNotFound
from orchestrator.plan.compiler import Plan, compile_workflow
from orchestrator.plan.policy import base_policy
from orchestrator.store import RedisRunStore
from orchestrator.store import retention as retention_module
from orchestrator.store.keys import Keys
from orchestrator.store.retention import Swept

FUTURE = 10_000.0
"""Seconds past now at which every test run is due."""


@pytest.fixture
def store(redis_client: Redis, key_prefix: str) -> Iterator[RedisRunStore]:
    yield RedisRunStore(redis_client, Keys(key_prefix))


def fan_plan(workflow: str = "ret") -> Plan:
    """``fetch`` -> ``each`` (for_each over fetch's output) -> ``report``: every kind of key a run has."""
    steps: dict[str, Any] = {
        "fetch": {"task": "t.fetch"},
        "each": {"task": "t.each", "needs": ["fetch"], "for_each": "${steps.fetch.output}", "args": {"x": "${item}"}},
        "report": {"task": "t.report", "needs": ["each"]},
    }
    return compile_workflow(build_workflow({"workflow": workflow, "steps": steps}))


def start(store: RedisRunStore, plan: Plan, run_id: str, *, retention: float = 60, archive: bool = False) -> str:
    store.runs.create(NewRun(run_id, plan, {}, Trigger.CLI, 60, archive=archive, retention=retention))
    return run_id


def claim(store: RedisRunStore, plan: Plan, unit: Unit, task_id: str, epoch: int = 0) -> None:
    message = StepMessage.of(unit, plan.plan_id, 1, epoch=epoch)
    claimed, _ = store.steps.claim_and_read(message, task_id, "w1@test", 60, StepReads())
    assert claimed.ok, claimed


def run_to_end(store: RedisRunStore, plan: Plan, run_id: str, *, items: int = 3, fail: bool = False) -> None:
    """Run every step of ``fan_plan`` as workers would; the last step fails with ``fail``."""
    claim(store, plan, Unit(run_id, "fetch"), "t-fetch")
    store.steps.complete(
        plan, Unit(run_id, "fetch"), "t-fetch", Outcome.succeeded(list(range(items))), lease_seconds=60
    )
    each = Unit(run_id, "each")
    claim(store, plan, each, "t-each")
    store.steps.start_fan_out(each, list(range(items)))
    store.steps.fanned_out(each, 60)
    for i in range(items):
        claim(store, plan, Unit(run_id, "each", i), f"t-each-{i}")
        store.steps.complete_item(Unit(run_id, "each", i), f"t-each-{i}", Outcome.succeeded(i), lease_seconds=60)
    store.steps.complete(plan, each, "t-each", Outcome.succeeded(list(range(items))), lease_seconds=60)
    claim(store, plan, Unit(run_id, "report"), "t-report")
    outcome = Outcome.failed(StepError(type="ValueError", message="no")) if fail else Outcome.succeeded("done")
    completion = store.steps.complete(plan, Unit(run_id, "report"), "t-report", outcome, lease_seconds=60)
    assert completion.run_finished


def keys_of(store: RedisRunStore, run_id: str) -> list[str]:
    """Every key of the run, found the slow way (SCAN by its hash tag), as the janitor must not."""
    return sorted(store.redis.scan_iter(match=f"{store.keys.prefix}:run:{{{run_id}}}*", count=1000))


def members_of(store: RedisRunStore, run_id: str) -> dict[str, list[str]]:
    """The run's entries in every index and queue of the store."""
    found: dict[str, list[str]] = {}
    for key in (store.keys.leases(), store.keys.outbox()):
        found[key] = [m for m in store.redis.zrange(key, 0, -1) if str(m).startswith(f"{run_id}|")]
    for key in (store.keys.runs(), store.keys.runs_of("ret"), store.keys.expiring(), store.keys.archiving()):
        found[key] = [run_id] if store.redis.zscore(key, run_id) is not None else []
    return {key: members for key, members in found.items() if members}


def test_a_run_that_ends_is_queued_for_removal_after_its_retention(store: RedisRunStore) -> None:
    plan = fan_plan()
    run_id = start(store, plan, "r-ends", retention=90)
    assert store.redis.hget(store.keys.run(run_id), "retention") == "90.0"
    assert store.redis.zscore(store.keys.expiring(), run_id) is None  # not while it runs
    before = time.time()
    run_to_end(store, plan, run_id)
    due = store.redis.zscore(store.keys.expiring(), run_id)
    assert due is not None and before + 90 <= due <= time.time() + 90
    assert store.redis.zscore(store.keys.archiving(), run_id) is None  # not marked archive


def test_an_archived_run_also_waits_for_the_history_from_when_it_ended(store: RedisRunStore) -> None:
    plan = fan_plan()
    run_id = start(store, plan, "r-archived", retention=90, archive=True)
    assert store.redis.hget(store.keys.run(run_id), "archive") == "1"
    before = time.time()
    run_to_end(store, plan, run_id, fail=True)
    ended = store.redis.zscore(store.keys.archiving(), run_id)
    assert ended is not None and before <= ended <= time.time()
    assert store.redis.zscore(store.keys.expiring(), run_id) == pytest.approx(ended + 90, abs=0.01)


def test_a_cancelled_run_is_queued_too(store: RedisRunStore) -> None:
    plan = fan_plan()
    run_id = start(store, plan, "r-cancelled", retention=30, archive=True)
    store.runs.cancel(run_id, list(plan.steps), "user:ops")
    assert store.redis.zscore(store.keys.expiring(), run_id) is not None
    assert store.redis.zscore(store.keys.archiving(), run_id) is not None
    store.runs.cancel(run_id, list(plan.steps), "user:ops")  # already ended: nothing moves
    assert store.redis.zcard(store.keys.expiring()) == 1


def test_a_retry_takes_the_run_out_of_both_queues_until_it_ends_again(store: RedisRunStore) -> None:
    plan = fan_plan()
    run_id = start(store, plan, "r-retried", archive=True)
    run_to_end(store, plan, run_id, fail=True)
    reset = store.runs.reset_for_retry(plan, run_id, "user:ops")
    assert members_of(store, run_id).keys() >= {store.keys.runs()}
    assert store.redis.zscore(store.keys.expiring(), run_id) is None
    assert store.redis.zscore(store.keys.archiving(), run_id) is None
    assert store.retention.sweep(time.time() + FUTURE) == Swept()  # a running run is never removed
    assert reset.start == ("report",)
    store.steps.mark_queued(run_id, reset.start, 60)
    claim(store, plan, Unit(run_id, "report"), "t-again", epoch=reset.epoch)
    store.steps.complete(plan, Unit(run_id, "report"), "t-again", Outcome.succeeded("ok"), lease_seconds=60)
    assert store.redis.zscore(store.keys.expiring(), run_id) is not None
    assert store.redis.zscore(store.keys.archiving(), run_id) is not None


def test_the_janitor_removes_every_key_of_a_due_run_and_its_index_entries(store: RedisRunStore) -> None:
    plan = fan_plan()
    kept = start(store, plan, "r-kept", retention=FUTURE * 10)
    run_to_end(store, plan, kept)
    gone = start(store, plan, "r-gone", retention=1)
    run_to_end(store, plan, gone, items=1200)  # more items than one UNLINK names
    # Members a dead run can still have: an item's lease left by a lost execution, an outbox entry.
    store.redis.zadd(store.keys.leases(), {str(Unit(gone, "each", 7)): time.time() + 60})
    store.redis.zadd(store.keys.outbox(), {str(Unit(gone, "report")): time.time() + 60})
    kinds = {(key.split("}", 1)[1] or ":run").split(":")[1] for key in keys_of(store, gone)}
    assert kinds == {"run", "step", "output", "items", "join", "inputs", "history"}
    kept_keys = keys_of(store, kept)

    swept = store.retention.sweep(time.time() + FUTURE)

    assert swept.removed == 1 and swept.postponed == 0
    assert swept.keys == 1 + 3 + 3 + 1 + 2 + 1 + 1 + 1200  # run, steps, outputs, items, joins, inputs, history
    assert keys_of(store, gone) == []
    assert members_of(store, gone) == {}
    assert keys_of(store, kept) == kept_keys
    assert [r.run_id for r in store.runs.page(RunQuery()).runs] == [kept]
    assert [r.run_id for r in store.runs.page(RunQuery(workflow="ret")).runs] == [kept]
    assert store.redis.zrange(store.keys.runs(), 0, -1) == [kept]
    assert store.redis.zrange(store.keys.runs_of("ret"), 0, -1) == [kept]
    with pytest.raises(RunNotFound):
        store.runs.get(gone)
    assert store.retention.sweep(time.time() + FUTURE) == Swept()  # nothing is left to do


def test_the_janitor_postpones_a_run_until_the_history_has_it(store: RedisRunStore) -> None:
    plan = fan_plan()
    run_id = start(store, plan, "r-waits", retention=1, archive=True)
    run_to_end(store, plan, run_id)
    before = keys_of(store, run_id)
    now = time.time() + FUTURE

    assert store.retention.sweep(now, postpone=30) == Swept(postponed=1)
    assert keys_of(store, run_id) == before
    assert store.redis.zscore(store.keys.expiring(), run_id) == pytest.approx(now + 30)
    assert store.retention.sweep(now + 29) == Swept()  # not looked at again before then
    assert store.runs.get(run_id).status is RunStatus.SUCCEEDED

    store.redis.zrem(store.keys.archiving(), run_id)  # the exporter wrote it
    assert store.retention.sweep(now + 31).removed == 1
    assert keys_of(store, run_id) == []
    assert members_of(store, run_id) == {}


def test_one_pass_removes_a_bounded_batch_longest_due_first(store: RedisRunStore) -> None:
    plan = fan_plan()
    for i in range(12):
        run_id = start(store, plan, f"r-{i:02}", retention=1 + i)
        run_to_end(store, plan, run_id, items=1)
    assert store.retention.sweep(time.time() + FUTURE, limit=5).removed == 5
    assert store.redis.zcard(store.keys.runs()) == 7
    assert store.redis.zrange(store.keys.expiring(), 0, 0) == ["r-05"]
    assert store.retention.sweep(time.time() + 3, limit=5) == Swept()  # the others are not due yet


class Killed(Exception):
    """The janitor's process died here."""


@pytest.mark.parametrize("round_trips", [0, 1, 5, 13])
def test_a_janitor_killed_midway_leaves_a_removal_the_next_pass_finishes(
    store: RedisRunStore, monkeypatch: pytest.MonkeyPatch, round_trips: int
) -> None:
    plan = fan_plan()
    run_id = start(store, plan, "r-killed", retention=1)
    run_to_end(store, plan, run_id, items=40)
    store.redis.zadd(store.keys.leases(), {str(Unit(run_id, "each", 3)): time.time() + 60})
    monkeypatch.setattr(retention_module, "KEYS_PER_COMMAND", 4)
    monkeypatch.setattr(retention_module, "COMMANDS_PER_ROUND_TRIP", 3)
    sent = retention_module._Deletion._send
    calls = []

    def dying(self: Any) -> None:
        if len(calls) == round_trips:
            raise Killed
        calls.append(1)
        sent(self)

    with monkeypatch.context() as patch:
        patch.setattr(retention_module._Deletion, "_send", dying)
        with pytest.raises(Killed):
            store.retention.sweep(time.time() + FUTURE)

    assert store.redis.zscore(store.keys.expiring(), run_id) is not None  # still due: it is found again
    with pytest.raises(RunNotFound):  # taken: it reads as gone already
        store.runs.get(run_id)
    assert store.redis.zscore(store.keys.runs(), run_id) is None
    assert keys_of(store, run_id)

    assert store.retention.sweep(time.time() + FUTURE).removed == 1
    assert keys_of(store, run_id) == []
    assert members_of(store, run_id) == {}


def test_a_run_taken_for_removal_cannot_be_retried(store: RedisRunStore, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = fan_plan()
    run_id = start(store, plan, "r-late-retry", retention=1)
    run_to_end(store, plan, run_id, fail=True)

    def dying(self: Any) -> None:
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(retention_module._Deletion, "_send", dying)
        with pytest.raises(Killed):
            store.retention.sweep(time.time() + FUTURE)
    coordinator = Coordinator(store, None, base_policy=base_policy(), lease_seconds=30)  # type: ignore[arg-type]
    with pytest.raises(RunNotFound):
        coordinator.retry(run_id, "user:ops")
    assert store.retention.sweep(time.time() + FUTURE).removed == 1
    assert keys_of(store, run_id) == []


def test_a_retry_racing_the_janitor_either_wins_whole_or_finds_no_run(
    store: RedisRunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = fan_plan()
    run_id = start(store, plan, "r-race", retention=1)
    run_to_end(store, plan, run_id, fail=True)
    client = store.runs.redis
    pipeline = client.pipeline
    raced: list[Swept] = []
    racing = [True]

    def pipeline_then_janitor(transaction: bool = True, shard_hint: Any = None) -> Any:
        # The retry's reads of the steps: the janitor removes the run between the WATCH and the write.
        if not transaction and racing:
            racing.clear()
            raced.append(store.retention.sweep(time.time() + FUTURE))
        return pipeline(transaction, shard_hint)

    monkeypatch.setattr(client, "pipeline", pipeline_then_janitor)
    with pytest.raises(RunNotFound):
        store.runs.reset_for_retry(plan, run_id, "user:ops")
    assert raced[-1].removed == 1
    monkeypatch.undo()
    assert keys_of(store, run_id) == []  # the reset wrote nothing on the removed run


def test_a_run_whose_keys_went_another_way_leaves_the_queue(store: RedisRunStore) -> None:
    plan = fan_plan()
    run_id = start(store, plan, "r-deleted", retention=1)
    run_to_end(store, plan, run_id, items=1)
    store.redis.delete(*keys_of(store, run_id))
    assert store.retention.sweep(time.time() + FUTURE) == Swept()
    assert members_of(store, run_id) == {store.keys.runs_of("ret"): [run_id]}  # its workflow is unknown now


def test_the_run_takes_its_workflows_retention_or_the_coordinators(store: RedisRunStore) -> None:
    class Dispatcher:
        def send(self, deliveries: Any) -> list[str]:
            return ["x" for _ in deliveries]

        def outbound(self, deliveries: Any) -> None:
            return None

    def workflow(**extra: Any) -> Any:
        return build_workflow({"workflow": "ret", "steps": {"a": {"task": "t.a"}}, **extra})

    coordinator = Coordinator(store, Dispatcher(), base_policy=base_policy(), lease_seconds=30, retention=120)  # type: ignore[arg-type]
    default = coordinator.submit(workflow()).run_id
    own = coordinator.submit(workflow(retention="2h")).run_id
    assert store.redis.hget(store.keys.run(default), "retention") == "120.0"
    assert store.redis.hget(store.keys.run(own), "retention") == "7200.0"


def test_a_run_cancelled_while_a_step_runs_waits_for_the_step_to_let_go(store: RedisRunStore) -> None:
    plan = fan_plan()
    run_id = start(store, plan, "r-cancelled-running", retention=1)
    claim(store, plan, Unit(run_id, "fetch"), "t-fetch")  # its lease is renewed while the task runs
    store.runs.cancel(run_id, list(plan.steps), "user:ops")
    now = time.time() + 30
    store.redis.zadd(store.keys.leases(), {str(Unit(run_id, "fetch")): now + 15})

    assert store.retention.sweep(now, postpone=60) == Swept(postponed=1)
    assert store.redis.zscore(store.keys.expiring(), run_id) == pytest.approx(now + 60)
    assert store.runs.get(run_id).status is RunStatus.CANCELLED

    # The execution comes back: its fan-out writes what a removed run would have kept for ever.
    store.steps.start_fan_out(Unit(run_id, "fetch"), [1, 2])
    kept = keys_of(store, run_id)
    assert store.retention.sweep(now + 61) == Swept(removed=1, keys=len(kept))  # its lease has expired by then
    assert keys_of(store, run_id) == []
    assert members_of(store, run_id) == {}
