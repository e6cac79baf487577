"""The run store's atomic transitions against a real Redis."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from redis import ConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from orchestrator.definition.loader import build_workflow
from orchestrator.definition.models import TriggerRule
from orchestrator.engine.context import StepReads
from orchestrator.engine.coordinator import Coordinator
from orchestrator.engine.ports import NewRun, Outbound, RunQuery
from orchestrator.engine.records import Outcome, RunStatus, StepError, StepStatus, Trigger
from orchestrator.engine.rules import Decision, decide
from orchestrator.engine.unit import StepMessage, Unit
from orchestrator.engine.verdicts import Claim
from orchestrator.plan.compiler import compile_workflow
from orchestrator.plan.policy import base_policy
from orchestrator.store import RedisRunStore
from orchestrator.store.keys import Keys


@pytest.fixture
def store(redis_client: Redis, key_prefix: str) -> Iterator[RedisRunStore]:
    yield RedisRunStore(redis_client, Keys(key_prefix))


def _plan(steps: dict[str, dict[str, object]]):  # type: ignore[no-untyped-def]
    return compile_workflow(build_workflow({"workflow": "w", "steps": steps}))


def _new_run(store: RedisRunStore, plan, run_id: str = "r1") -> str:  # type: ignore[no-untyped-def]
    store.runs.create(NewRun(run_id, plan, {}, Trigger.CLI, 60))
    store.steps.mark_queued(run_id, list(plan.roots), 60)
    return run_id


def claim(store: RedisRunStore, unit: Unit, task_id: str, attempt: int, worker: str, lease: float) -> Claim:
    plan_id = str(store.redis.hget(store.keys.run(unit.run_id), "plan_id"))
    return store.steps.claim_and_read(StepMessage.of(unit, plan_id, attempt), task_id, worker, lease, StepReads())[0]


def complete(store: RedisRunStore, plan, unit: Unit, task_id: str, status: StepStatus, **kwargs):  # type: ignore[no-untyped-def]
    return store.steps.complete(plan, unit, task_id, Outcome(status, **kwargs), lease_seconds=60)


def test_lua_trigger_rules_agree_with_python(store: RedisRunStore) -> None:
    # A step `j` with three needs; every sequence of outcomes, every rule.
    for rule in TriggerRule:
        for outcomes in itertools.product(["succeeded", "failed", "skipped"], repeat=3):
            plan = _plan(
                {
                    "a": {"task": "t"},
                    "b": {"task": "t"},
                    "c": {"task": "t"},
                    "j": {"task": "t", "needs": ["a", "b", "c"], "trigger_rule": rule.value},
                }
            )
            run_id = f"{rule.value}-{'-'.join(outcomes)}"
            _new_run(store, plan, run_id)
            fired: list[str] = []
            skipped: list[str] = []
            counts = {"succeeded": 0, "failed": 0, "skipped": 0}
            expected = Decision.WAIT
            for need, outcome in zip("abc", outcomes, strict=True):
                result = complete(store, plan, Unit(run_id, need), "", StepStatus(outcome))
                fired += result.fired
                skipped += result.skipped
                if expected is Decision.WAIT:
                    counts[outcome] += 1
                    expected = decide(rule, counts["succeeded"], counts["failed"], counts["skipped"], 3)
                    if expected is not Decision.WAIT:
                        assert (fired, skipped) == ((["j"], []) if expected is Decision.FIRE else ([], ["j"]))
            assert expected is not Decision.WAIT
            assert len(fired) + len(skipped) == 1, (rule, outcomes)  # decided exactly once


def test_claim_verdicts(store: RedisRunStore) -> None:
    plan = _plan({"a": {"task": "t"}, "b": {"task": "t", "needs": ["a"]}})
    run_id = _new_run(store, plan)
    unit = Unit(run_id, "a")
    assert claim(store, Unit(run_id, "b"), "x", 1, "w", 5).verdict == "stale"  # b is pending: never dispatched
    assert claim(store, unit, "t1", 2, "w", 5).verdict == "stale"  # wrong attempt
    assert claim(store, unit, "t1", 1, "w", 5).ok
    assert claim(store, unit, "t2", 1, "w", 5).verdict == "busy"  # a duplicate while the lease lives
    store.redis.zadd(store.keys.leases(), {str(unit): 0})  # the owner died
    assert claim(store, unit, "t2", 1, "w", 5).ok  # taken over
    assert complete(store, plan, unit, "t1", StepStatus.SUCCEEDED, output=1).verdict == "stale"  # fenced
    assert complete(store, plan, unit, "t2", StepStatus.SUCCEEDED, output=1).fired == ("b",)
    assert claim(store, unit, "t3", 1, "w", 5).verdict == "done"
    assert store.runs.get(run_id).status is RunStatus.RUNNING


def test_concurrent_arrivals_fire_a_join_exactly_once(store: RedisRunStore) -> None:
    needs = [f"n{i}" for i in range(20)]
    steps: dict[str, dict[str, object]] = {n: {"task": "t"} for n in needs}
    steps["join"] = {"task": "t", "needs": needs}
    plan = _plan(steps)
    fired: list[str] = []
    lock = threading.Lock()

    for round_ in range(10):
        run_id = _new_run(store, plan, f"race-{round_}")
        barrier = threading.Barrier(len(needs))

        def finish(need: str, run_id: str = run_id, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            result = complete(store, plan, Unit(run_id, need), "", StepStatus.SUCCEEDED, output=need)
            with lock:
                fired.extend(result.fired)

        threads = [threading.Thread(target=finish, args=(n,)) for n in needs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert fired == ["join"] * 10


def test_run_finishes_once_and_failure_propagates(store: RedisRunStore) -> None:
    plan = _plan({"a": {"task": "t"}, "b": {"task": "t", "needs": ["a"]}, "c": {"task": "t"}})
    run_id = _new_run(store, plan)
    failed = complete(store, plan, Unit(run_id, "a"), "", StepStatus.FAILED, error=StepError(type="E", message="m"))
    assert failed.skipped == ("b",) and not failed.run_finished
    assert complete(store, plan, Unit(run_id, "b"), "", StepStatus.SKIPPED).verdict == "ok"
    last = complete(store, plan, Unit(run_id, "c"), "", StepStatus.SUCCEEDED, output={"x": 1})
    assert last.run_finished and last.run_status == "failed"
    record = store.runs.get(run_id)
    assert record.status is RunStatus.FAILED
    assert record.steps["a"].error == StepError(type="E", message="m")
    assert record.steps["c"].output == {"x": 1}


def test_recover_requeues_an_orphan_for_the_same_attempt(store: RedisRunStore) -> None:
    plan = _plan({"a": {"task": "t"}})
    run_id = _new_run(store, plan)
    unit = Unit(run_id, "a")
    assert claim(store, unit, "t1", 1, "w", 0.01).ok
    time.sleep(0.02)
    assert store.leases.expired(time.time(), 10) == [unit]
    recovery = store.leases.recover(unit, 30)
    assert recovery.verdict == "requeue" and recovery.message is not None and recovery.message.attempt == 1
    assert complete(store, plan, unit, "t1", StepStatus.SUCCEEDED).verdict == "stale"  # the old owner is fenced
    assert claim(store, unit, "t2", 1, "w", 5).ok


def test_a_queued_unit_is_published_again_with_a_doubling_wait(store: RedisRunStore) -> None:
    plan = _plan({"a": {"task": "t"}})
    run_id = _new_run(store, plan)
    unit = Unit(run_id, "a")
    member = str(unit)
    waits = []
    for _ in range(3):
        store.redis.zadd(store.keys.outbox(), {member: 0})  # its guard expired
        before = time.time()
        recovery = store.leases.recover(unit, 10)
        assert recovery.verdict == "requeue" and recovery.message is not None and recovery.message.attempt == 1
        waits.append(round(float(store.redis.zscore(store.keys.outbox(), member) or 0) - before))
        assert store.leases.recover(unit, 10).verdict == "none"  # a second sweep finds it guarded again
    assert waits == [10, 20, 40]  # a backlog gets a few copies, not one per sweep
    assert claim(store, Unit(run_id, "a"), "t1", 1, "w", 5).ok
    assert store.redis.hget(store.keys.step(run_id, "a"), "republished") is None


def test_claim_and_read_reloads_its_script_after_a_flush(store: RedisRunStore) -> None:
    plan = _plan({"a": {"task": "t"}, "b": {"task": "t", "needs": ["a"], "args": {"x": "${steps.a.output}"}}})
    run_id = _new_run(store, plan)
    complete(store, plan, Unit(run_id, "a"), "", StepStatus.SUCCEEDED, output={"n": 1})
    store.redis.script_flush()  # as after a Redis restart without persistence of scripts
    message = StepMessage.of(Unit(run_id, "b"), plan.plan_id)
    claimed, read = store.steps.claim_and_read(message, "t1", "w", 5, StepReads(outputs=("a",)))
    assert claimed.ok and read is not None
    assert read.outputs == {"a": {"n": 1}} and read.workflow == "w"


def test_a_claim_that_reads_nothing_upstream_is_one_command_whose_reply_carries_the_run(
    redis_client: Redis, key_prefix: str
) -> None:
    sent: list[str] = []

    base = redis_client.connection_pool.connection_class  # TCP, TLS or a unix socket, as the test Redis is

    class RecordingConnection(base):  # type: ignore[misc,valid-type] # every command sent, scripts' too
        def send_command(self, *args: Any, **kwargs: Any) -> None:
            sent.append(str(args[0]))
            super().send_command(*args, **kwargs)  # type: ignore[no-untyped-call]

    class Recording(Redis):
        def pipeline(self, *args: Any, **kwargs: Any) -> Any:
            sent.append("pipeline")
            return super().pipeline(*args, **kwargs)

    options = redis_client.connection_pool.connection_kwargs
    pool = ConnectionPool(connection_class=RecordingConnection, **options)
    store = RedisRunStore(Recording(connection_pool=pool), Keys(key_prefix))
    steps = {"a": {"task": "t", "args": {"who": "${params.who}"}}, "b": {"task": "t", "needs": ["a"]}}
    plan = compile_workflow(build_workflow({"workflow": "w", "params": {"who": {"type": "string"}}, "steps": steps}))
    store.runs.create(NewRun("r1", plan, {"who": "ops"}, Trigger.CLI, 60))
    created = str(redis_client.hget(store.keys.run("r1"), "created_at"))

    sent.clear()
    claimed, read = store.steps.claim_and_read(StepMessage.of(Unit("r1", "a"), plan.plan_id), "t1", "w", 5, StepReads())
    assert claimed.ok and read is not None
    assert sent == ["EVALSHA"]  # the claim's reply holds the run's fields: no pipeline, no HMGET after it
    assert (read.workflow, read.created_at, json.loads(read.params_json)) == ("w", created, {"who": "ops"})

    complete(store, plan, Unit("r1", "a"), "t1", StepStatus.SUCCEEDED)
    sent.clear()
    message = StepMessage.of(Unit("r1", "b"), plan.plan_id)
    claimed, read = store.steps.claim_and_read(message, "t2", "w", 5, StepReads(params=False))
    assert claimed.ok and read is not None
    assert sent == ["EVALSHA"]
    assert (read.workflow, read.params_json) == ("w", "{}")  # params unread: the step names none
    pool.disconnect()


def test_an_idempotency_key_belongs_to_an_execution_not_to_a_unit(store: RedisRunStore) -> None:
    plan = _plan({"a": {"task": "t"}, "b": {"task": "t"}})
    run_id = _new_run(store, plan)
    a, b = Unit(run_id, "a"), Unit(run_id, "b")
    keys = store.side_effects
    assert claim(store, a, "t1", 1, "w", 30).ok
    assert keys.begin("t", "k", a, "t1", 60).verdict == "go"
    assert claim(store, b, "t9", 1, "w", 30).ok
    assert keys.begin("t", "k", b, "t9", 60).verdict == "busy"  # a live execution of another unit holds it
    assert keys.begin("other.task", "k", b, "t9", 60).verdict == "go"  # keys are scoped by task
    store.redis.zadd(store.keys.leases(), {str(a): 0})  # a's worker died...
    recovery = store.leases.recover(a, 30)
    assert recovery.verdict == "requeue"
    assert claim(store, a, "t2", 1, "w", 30).ok  # ...and its recovery claimed it with a fresh lease
    assert keys.begin("t", "k", a, "t2", 60).verdict == "go"  # it takes its own key over at once
    keys.end("t", "k", "t2", {"done": True}, 60)
    taken = keys.begin("t", "k", b, "t9", 60)
    assert (taken.verdict, taken.output) == ("done", {"done": True})


def test_a_deferred_attempt_is_claimed_again_under_the_same_number(store: RedisRunStore) -> None:
    plan = _plan({"a": {"task": "t"}})
    run_id = _new_run(store, plan)
    unit = Unit(run_id, "a")
    assert claim(store, unit, "t1", 1, "w", 30).ok
    error = StepError(type="Deferred", message="key busy")
    assert store.steps.schedule_retry(unit, "t1", error, time.time() + 30, counts=False)
    assert claim(store, unit, "t2", 2, "w", 30).verdict == "stale"  # it was not counted...
    assert claim(store, unit, "t2", 1, "w", 30).ok  # ...the same attempt runs again
    assert store.runs.get(run_id).steps["a"].attempts == 1


def test_a_run_starts_when_its_earliest_claim_did_whichever_claim_ran_first(store: RedisRunStore) -> None:
    plan = _plan({"a": {"task": "t"}, "b": {"task": "t"}})
    run_id = _new_run(store, plan)
    assert claim(store, Unit(run_id, "a"), "t1", 1, "w", 30).ok
    # A worker whose clock was later won the race to the store: its time was recorded first.
    store.redis.hset(store.keys.run(run_id), "started_at", "9999-01-01T00:00:00.000000+00:00")
    assert claim(store, Unit(run_id, "b"), "t2", 1, "w", 30).ok
    record = store.runs.get(run_id)
    assert record.started_at == record.steps["b"].started_at  # the earlier clock wins


def test_a_queued_unit_stays_guarded_until_a_delivery_claims_it(store: RedisRunStore) -> None:
    plan = _plan({"a": {"task": "t"}})
    run_id = _new_run(store, plan)  # a root: queued, its message "published"
    member = str(Unit(run_id, "a"))
    assert store.redis.zscore(store.keys.outbox(), member) is not None  # published is not delivered
    assert claim(store, Unit(run_id, "a"), "t1", 1, "w", 30).ok
    assert store.redis.zscore(store.keys.outbox(), member) is None


def test_a_fan_out_without_progress_publishes_its_items_again(store: RedisRunStore) -> None:
    workflow = {"workflow": "w", "params": {"items": {"type": "array"}}, "steps": {"each": {"task": "t"}}}
    workflow["steps"]["each"]["for_each"] = "${params.items}"  # type: ignore[index]
    plan = compile_workflow(build_workflow(workflow))
    run_id = _new_run(store, plan)
    step = Unit(run_id, "each")
    assert claim(store, step, "t1", 1, "w", 30).ok
    store.steps.start_fan_out(step, [1, 2, 3])
    store.steps.fanned_out(step, 30)
    assert store.leases.recover(step, 30).verdict == "none"  # the watchdog is alive
    assert claim(store, Unit(run_id, "each", 0), "i0", 1, "w", 30).ok
    ended = store.steps.complete_item(Unit(run_id, "each", 0), "i0", Outcome.succeeded(1), lease_seconds=30)
    assert ended.verdict == "recorded"
    store.redis.zadd(store.keys.outbox(), {str(step): 0})  # no progress for the watchdog's time
    recovery = store.leases.recover(step, 30)
    assert (recovery.verdict, recovery.items) == ("refan", 3)
    assert claim(store, Unit(run_id, "each", 0), "i0b", 1, "w", 30).verdict == "done"  # ended items drop copies
    assert claim(store, Unit(run_id, "each", 1), "i1", 1, "w", 30).ok  # lost ones run


def _fanned_out(store: RedisRunStore, run_id: str, items: list[int]):  # type: ignore[no-untyped-def]
    workflow = {"workflow": "w", "params": {"items": {"type": "array"}}, "steps": {"each": {"task": "t"}}}
    workflow["steps"]["each"]["for_each"] = "${params.items}"  # type: ignore[index]
    workflow["steps"]["after"] = {"task": "t", "needs": ["each"], "trigger_rule": "all_done"}
    plan = compile_workflow(build_workflow(workflow))
    _new_run(store, plan, run_id)
    step = Unit(run_id, "each")
    assert claim(store, step, "t1", 1, "w", 30).ok
    store.steps.start_fan_out(step, items)
    store.steps.fanned_out(step, 30)
    for i in range(len(items)):
        assert claim(store, Unit(run_id, "each", i), f"i{i}", 1, "w", 30).ok
    return plan, step


class _Sent:
    """A dispatcher that keeps what it was asked to send (a pure stand-in: nothing reads a queue here)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, deliveries):  # type: ignore[no-untyped-def]
        self.sent += [d.message.step for d in deliveries]
        return ["id"] * len(deliveries)

    def revoke(self, task_ids):  # type: ignore[no-untyped-def]
        pass

    def outbound(self, deliveries):  # type: ignore[no-untyped-def]
        return None

    def pushed(self, messages):  # type: ignore[no-untyped-def]
        pass

    def call(self, task, queue, kwargs):  # type: ignore[no-untyped-def]
        pass


def test_an_item_recorded_again_by_its_own_execution_answers_what_the_first_call_decided(
    store: RedisRunStore,
) -> None:
    """A retry of the last item's record (its first answer lost with the store) still ends the step."""
    _, step = _fanned_out(store, "r1", [1, 2])
    first = store.steps.complete_item(Unit("r1", "each", 0), "i0", Outcome.succeeded(1), lease_seconds=30)
    last = store.steps.complete_item(Unit("r1", "each", 1), "i1", Outcome.succeeded(2), lease_seconds=30)
    again = store.steps.complete_item(Unit("r1", "each", 1), "i1", Outcome.succeeded(2), lease_seconds=30)
    assert (first.verdict, last.verdict, again.verdict) == ("recorded", "all_done", "all_done")
    assert last.step_task_id == again.step_task_id == "t1"
    other = store.steps.complete_item(Unit("r1", "each", 1), "someone-else", Outcome.succeeded(2), lease_seconds=30)
    assert other.verdict == "stale"
    _, failing = _fanned_out(store, "r2", [1])
    error = StepError(type="ValueError", message="bad")
    assert store.steps.complete_item(Unit("r2", "each", 0), "i0", Outcome.failed(error), lease_seconds=30).verdict == (
        "step_failed"
    )
    assert store.steps.complete_item(Unit("r2", "each", 0), "i0", Outcome.failed(error), lease_seconds=30).verdict == (
        "step_failed"
    )


@pytest.mark.parametrize("ending", ["succeeded", "failed"])
def test_a_fan_out_whose_ender_died_is_ended_by_the_sweeper(store: RedisRunStore, ending: str) -> None:
    """The execution that ended the last item (or the failing one) died before it ended the step: no item
    is left to run and republishing them does nothing; the sweeper ends the step from what they recorded."""
    plan, step = _fanned_out(store, "r1", [1, 2])
    store.steps.complete_item(Unit("r1", "each", 0), "i0", Outcome.succeeded(10), lease_seconds=30)
    if ending == "succeeded":
        store.steps.complete_item(Unit("r1", "each", 1), "i1", Outcome.succeeded(20), lease_seconds=30)
    else:
        error = StepError(type="ValueError", message="item 1 is bad")
        store.steps.complete_item(Unit("r1", "each", 1), "i1", Outcome.failed(error), lease_seconds=30)
    # ... and here its process dies. The watchdog expires:
    store.redis.zadd(store.keys.outbox(), {str(step): 0})
    dispatcher = _Sent()
    coordinator = Coordinator(store, dispatcher, base_policy=base_policy(), lease_seconds=30)
    coordinator.recover()
    record = coordinator.get("r1")
    assert record.steps["each"].status.value == ending
    if ending == "succeeded":
        assert record.steps["each"].output == [10, 20]
    else:
        assert record.steps["each"].error == StepError(type="ValueError", message="item 1 is bad")
    assert dispatcher.sent == ["after"]  # its dependent goes out; no item is published again
    coordinator.recover()
    assert dispatcher.sent == ["after"]


def _all_pages(store: RedisRunStore, **query: object) -> tuple[list[str], int]:
    """Every run a list shows, page after page, and the pages it took."""
    seen: list[str] = []
    after, pages = None, 0
    while True:
        page = store.runs.page(RunQuery(after=after, **query))  # type: ignore[arg-type]
        seen += [r.run_id for r in page.runs]
        pages += 1
        if page.next is None or not page.runs:
            return seen, pages
        after = page.next


def test_pages_read_only_the_runs_they_show_and_filters_widen_their_reads(
    store: RedisRunStore, redis_client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = _plan({"a": {"task": "t"}})
    ids = [_new_run(store, plan, f"r{i:03}") for i in range(120)]
    failed = set(ids[::7])
    for run_id in failed:
        redis_client.hset(store.keys.run(run_id), "status", RunStatus.FAILED.value)
    newest_first = [r.run_id for r in sorted((store.runs.get(i) for i in ids), key=lambda r: r.created_at)][::-1]

    read: list[int] = []
    original = store.runs.redis.zrevrangebyscore

    def counted(*args: object, **kwargs: object) -> object:
        found = original(*args, **kwargs)  # type: ignore[arg-type]
        read.append(len(found))  # type: ignore[arg-type]
        return found

    monkeypatch.setattr(store.runs.redis, "zrevrangebyscore", counted)
    first = store.runs.page(RunQuery(limit=10))
    assert read == [10]  # the newest ten, not a batch of the index
    assert [r.run_id for r in first.runs] == newest_first[:10]

    assert _all_pages(store, limit=10)[0] == newest_first
    assert _all_pages(store, limit=4, status=RunStatus.FAILED)[0] == [i for i in newest_first if i in failed]


def test_a_new_run_is_recorded_with_its_roots_pushed_in_one_script_and_a_used_key_writes_nothing(
    store: RedisRunStore,
) -> None:
    """``create.lua``: the run's hash, its indexes, each root queued, in the outbox and in the history;
    the roots' messages pushed when given (the broker is this Redis); a second submission under the
    same idempotency key answers with the first run and leaves the store as it was."""
    plan = _plan({"a": {"task": "t"}, "b": {"task": "t"}, "c": {"task": "t", "needs": ["a", "b"]}})
    outbound = {s: Outbound(f"task-{s}", "default", 0, f"message-{s}") for s in plan.roots}
    run = NewRun("r1", plan, {"n": 1}, Trigger.API, 60, started_by="token:svc")
    assert store.runs.create(run, "key-1", outbound) == ("r1", True)

    queue = store.keys.queue_list("default", 0)
    assert sorted(store.redis.lrange(queue, 0, -1)) == ["message-a", "message-b"]
    assert {s: store.redis.hget(store.keys.step("r1", s), "status") for s in "abc"} == {
        "a": "queued",
        "b": "queued",
        "c": None,
    }
    shard = store.keys.shard("r1")
    assert set(store.redis.zrange(shard.outbox(), 0, -1)) == {str(Unit("r1", "a")), str(Unit("r1", "b"))}
    assert store.redis.zscore(shard.runs_of("w"), "r1") is not None
    record = store.runs.get("r1")
    assert (record.status, record.trigger, record.started_by, record.params) == (
        RunStatus.PENDING,
        Trigger.API,
        "token:svc",
        {"n": 1},
    )
    events = [(e.event, e.step) for e in store.runs.history("r1")]
    assert events[0] == ("submitted", None) and sorted(events[1:]) == [("queued", "a"), ("queued", "b")]

    before = {key: store.redis.dump(key) for key in store.redis.scan_iter(f"{store.keys.prefix}*")}
    again = NewRun("r2", plan, {}, Trigger.API, 60)
    assert store.runs.create(again, "key-1", outbound) == ("r1", False)
    assert {key: store.redis.dump(key) for key in store.redis.scan_iter(f"{store.keys.prefix}*")} == before
    assert store.redis.llen(queue) == 2


@pytest.mark.parametrize("key", [None, "key-1"], ids=["pushed after the script", "pushed by the script"])
def test_the_roots_of_a_wide_run_are_pushed_in_batches_in_the_order_single_pushes_leave_them(
    store: RedisRunStore, key: str | None
) -> None:
    """2,500 roots on two queues go out as a few ``LPUSH`` es of at most 1,000 messages, by
    ``RedisRuns.create`` after the script or, with an idempotency key, by the script (``lib.lua``
    ``batched``), and each list ends as 2,500 single ``LPUSH`` es in the roots' order would leave it."""
    names = [f"s{i:04d}" for i in range(2_500)]
    plan = _plan({name: {"task": "t"} for name in names})
    queues = {name: "even" if i % 2 == 0 else "odd" for i, name in enumerate(names)}
    # in the reverse of the roots' order: the lists follow the roots, not the mapping
    outbound = {s: Outbound(f"task-{s}", queues[s], 0, f"message-{s}") for s in reversed(plan.roots)}
    store.redis.config_resetstat()
    assert store.runs.create(NewRun("r1", plan, {}, Trigger.API, 60), key, outbound) == ("r1", True)

    for queue in ("even", "odd"):
        expected = [f"message-{s}" for s in reversed(plan.roots) if queues[s] == queue]  # LPUSH: newest first
        assert store.redis.lrange(store.keys.queue_list(queue, 0), 0, -1) == expected
    assert store.redis.zcard(store.keys.shard("r1").outbox()) == len(names)
    stats = store.redis.info("commandstats")
    assert stats["cmdstat_lpush"]["calls"] == 4  # 1,250 a queue: 1,000 and 250
    assert stats["cmdstat_zadd"]["calls"] == 2 + 3  # the two run indexes, then 2,500 guards: 1,000, 1,000, 500


def test_a_run_without_an_idempotency_key_pushes_its_roots_after_its_script_in_the_same_round_trip(
    store: RedisRunStore,
) -> None:
    """Nothing can stop a run without a key being created, so its roots' messages are ``LPUSH`` ed in
    the script's pipeline rather than passed through it; a server that lost its scripts (a restart)
    runs the pushes all the same and the script once more: the run is recorded once, each message
    pushed once."""
    plan = _plan({"a": {"task": "t"}, "b": {"task": "t"}, "c": {"task": "t", "needs": ["a", "b"]}})
    outbound = {s: Outbound(f"task-{s}", "default", 0, f"message-{s}") for s in plan.roots}
    queue = store.keys.queue_list("default", 0)
    for run_id in ("r1", "r2"):
        if run_id == "r2":
            store.redis.script_flush()  # as after a Redis restart without persistence of scripts
        store.redis.config_resetstat()
        assert store.runs.create(NewRun(run_id, plan, {}, Trigger.API, 60), None, outbound) == (run_id, True)
        stats = store.redis.info("commandstats")
        assert stats["cmdstat_lpush"]["calls"] == 1
        assert stats["cmdstat_evalsha"]["calls"] == (1 if run_id == "r1" else 2)  # NOSCRIPT, then once more
        assert store.redis.lrange(queue, 0, -1) == ["message-b", "message-a"]
        store.redis.delete(queue)
        assert {s: store.redis.hget(store.keys.step(run_id, s), "status") for s in "abc"} == {
            "a": "queued",
            "b": "queued",
            "c": None,
        }
        outbox = store.redis.zrange(store.keys.shard(run_id).outbox(), 0, -1)
        assert {str(Unit(run_id, "a")), str(Unit(run_id, "b"))} <= set(outbox)
        assert [e.event for e in store.runs.history(run_id)] == ["submitted", "queued", "queued"]


def test_events_recorded_in_a_loop_keep_the_history_bounded(store: RedisRunStore) -> None:
    """``lib.lua`` ``writes.record``: the events of a loop (a wide run's ``queued``, a completion's
    fired dependents) are added without trimming each time, then the stream is trimmed once, to
    about the 100,000 events every XADD keeps, however many the loop added (an ``XTRIM ~`` alone
    stops after 10,000)."""
    roots = {f"r{i}": {"task": "t"} for i in range(12_000)}
    plan = _plan({**roots, "b": {"task": "t", "needs": ["r0"]}, "c": {"task": "t", "needs": ["r0"]}})
    history = store.keys.history("r1")

    def fill(events: int) -> None:  # a long run's earlier events
        pipe = store.redis.pipeline(transaction=False)
        for n in range(events):
            pipe.xadd(history, {"at": "earlier", "event": "noted", "n": n})
            if n % 10_000 == 9_999 or n == events - 1:
                pipe.execute()

    fill(100_000)
    store.runs.create(NewRun("r1", plan, {}, Trigger.API, 60))  # 12,000 queued events in one loop
    assert 100_000 <= store.redis.xlen(history) < 101_000  # approximately (whole nodes), as MAXLEN ~ trims
    assert claim(store, Unit("r1", "r0"), "t1", 1, "w", 60).ok
    fill(25_000)
    complete(store, plan, Unit("r1", "r0"), "t1", StepStatus.SUCCEEDED)  # fires b and c
    assert 100_000 <= store.redis.xlen(history) < 101_000
    events = [e["event"] for _, e in store.redis.xrevrange(history, count=3)]
    assert events == ["queued", "queued", "succeeded"]


def test_a_completion_that_fires_one_dependent_trims_as_each_event_does(store: RedisRunStore) -> None:
    # A chain's step: one queued event, recorded as `record` records one (XADD MAXLEN ~): no XTRIM.
    plan = _plan({"a": {"task": "t"}, "b": {"task": "t", "needs": ["a"]}})
    run_id = _new_run(store, plan)
    assert claim(store, Unit(run_id, "a"), "t1", 1, "w", 60).ok
    store.redis.config_resetstat()
    assert complete(store, plan, Unit(run_id, "a"), "t1", StepStatus.SUCCEEDED).fired == ("b",)
    stats = store.redis.info("commandstats")
    assert stats["cmdstat_xadd"]["calls"] == 2 and "cmdstat_xtrim" not in stats


def test_a_script_call_whose_pooled_connection_was_killed_runs_once_on_a_new_one(
    store: RedisRunStore, redis_url: str
) -> None:
    # The step path's scripts go straight to a pooled connection (scripts.pooled), not through
    # execute_command: a connection the server dropped while it sat in the pool is replaced.
    plan = _plan({"a": {"task": "t"}})
    run_id = _new_run(store, plan)
    message = StepMessage.of(Unit(run_id, "a"), plan.plan_id)
    before = store.redis.client_id()
    killer = Redis.from_url(redis_url)
    assert killer.client_kill_filter(_id=before) == 1
    killer.close()
    claimed, _ = store.steps.claim_and_read(message, "t1", "w", 60, StepReads())  # the first call since
    assert claimed.ok
    assert store.redis.client_id() != before
    history = store.redis.xrange(store.keys.history(run_id))
    assert [e["event"] for _, e in history].count("started") == 1


def test_a_script_call_whose_send_fails_is_sent_again_by_the_clients_retry_policy(
    redis_client: Redis, key_prefix: str
) -> None:
    # A connection error while sending: the server received no whole command, and the client's
    # retry policy (here one retry; a client from a URL has none) sends it again on a new
    # connection, as execute_command does.
    failures = [RedisConnectionError("connection dropped while sending")]
    base = redis_client.connection_pool.connection_class

    class Dropping(base):  # type: ignore[misc,valid-type]
        def send_command(self, *args: Any, **kwargs: Any) -> None:
            if args[0] == "EVALSHA" and failures:
                self.disconnect()
                raise failures.pop()
            super().send_command(*args, **kwargs)

    options = redis_client.connection_pool.connection_kwargs
    pool = ConnectionPool(connection_class=Dropping, **options, retry=Retry(NoBackoff(), 1))
    store = RedisRunStore(Redis(connection_pool=pool), Keys(key_prefix))
    plan = _plan({"a": {"task": "t"}})
    run_id = _new_run(store, plan)
    claimed, _ = store.steps.claim_and_read(StepMessage.of(Unit(run_id, "a"), plan.plan_id), "t1", "w", 60, StepReads())
    assert claimed.ok and not failures
    history = store.redis.xrange(store.keys.history(run_id))
    assert [e["event"] for _, e in history].count("started") == 1
    pool.disconnect()
