"""The run store's key layout and its parts on a real Redis Cluster, without workers.

Every Lua script names keys of one slot only: Redis refuses any other call with CROSSSLOT, so each
test that runs a script here proves it for that script.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest
from redis.crc import key_slot

from orchestrator.engine.ports import NewRun, RunQuery
from orchestrator.engine.records import RunStatus, Trigger
from orchestrator.engine.unit import Unit
from orchestrator.plan.compiler import Plan
from orchestrator.store import Keys
from orchestrator.store.stats import measure
from tests.integration.conftest import Orchestra
from tests.integration.test_retention import CHAIN, FAN, leftovers, run_here, wait_for

SLOTS = 16384


def test_every_key_of_a_run_shares_the_slot_of_its_shards_indexes() -> None:
    keys = Keys("orch", 16)
    for run_id in (keys.new_run_id() for _ in range(50)):
        shard = keys.shard(run_id)
        slots = {
            key_slot(k.encode())
            for k in (
                keys.run(run_id),
                keys.step(run_id, "a"),
                keys.item(run_id, "a", 7),
                keys.output(run_id, "a"),
                keys.item_outputs(run_id, "a"),
                keys.item_inputs(run_id, "a"),
                keys.join(run_id, "a"),
                keys.history(run_id),
                keys.removal(run_id),
                shard.leases(),
                shard.outbox(),
                shard.runs(),
                shard.runs_of("wf"),
                shard.expiring(),
                shard.archiving(),
            )
        }
        assert len(slots) == 1
        assert keys.kind(keys.item(run_id, "a", 7)) == "item" and keys.kind(keys.run(run_id)) == "run"
        assert keys.kind(shard.leases()) == "leases" and keys.kind(shard.runs_of("wf")) == "runs_of"


@pytest.mark.parametrize("shards", [16, 64, 256])
def test_shards_spread_evenly_over_masters_that_split_the_slots_in_ranges(shards: int) -> None:
    keys = Keys("orch", shards)
    slots = [key_slot(s.leases().encode()) for s in keys.all_shards]
    assert len(set(slots)) == shards
    per_master = Counter(slot * 3 // SLOTS for slot in slots)  # redis-cli --cluster create: three ranges
    # each shard owns 1/shards of the slot space; only the two shards a range boundary cuts may go either way
    assert max(per_master.values()) - min(per_master.values()) <= 2, per_master
    # an idempotent submission's run is created in its key's shard
    shard = keys.submission_shard("wf", "key-1")
    assert keys.shard(keys.new_run_id(shard)) == shard


ONE_STEP: dict[str, Any] = {"workflow": "listed", "steps": {"only": {"task": "t.effect", "args": {"name": "x"}}}}


def test_runs_are_spread_over_the_shards_and_listed_newest_first_across_them(orchestra: Orchestra) -> None:
    store = orchestra.store
    assert store.keys.clustered and store.keys.shards == 16
    submitted = [orchestra.submit(ONE_STEP) for _ in range(60)]
    other = [orchestra.submit({**ONE_STEP, "workflow": "other"}) for _ in range(5)]
    assert len({store.keys.shard(run_id).index for run_id in submitted}) > 8

    pages, after = [], None
    while True:
        page = store.runs.page(RunQuery(limit=7, after=after))
        pages += [r.run_id for r in page.runs]
        if page.next is None:
            break
        after = page.next
    assert pages == list(reversed(submitted + other))  # newest first, across every shard
    of_workflow = store.runs.page(RunQuery(workflow="other", limit=10)).runs
    assert [r.run_id for r in of_workflow] == list(reversed(other))


def test_an_idempotent_submission_answers_with_its_first_run(orchestra: Orchestra) -> None:
    workflow = orchestra.workflow(ONE_STEP)
    first = orchestra.coordinator.submit(workflow, idempotency_key="order-17")
    again = orchestra.coordinator.submit(workflow, idempotency_key="order-17")
    assert first.created and not again.created and again.run_id == first.run_id
    keys = orchestra.store.keys
    assert keys.shard(first.run_id) == keys.submission_shard("listed", "order-17")
    assert orchestra.store.runs.get(first.run_id).status is RunStatus.PENDING


def test_retention_removes_every_key_of_finished_runs_from_every_shard(orchestra: Orchestra) -> None:
    store = orchestra.store
    chain: Plan = orchestra.coordinator.compile(orchestra.workflow(CHAIN))
    fan: Plan = orchestra.coordinator.compile(orchestra.workflow(FAN))
    run_ids = [store.keys.new_run_id() for _ in range(200)]
    for i, run_id in enumerate(run_ids):
        run_here(store, fan if i % 20 == 0 else chain, run_id)
    assert all(store.runs.summary(r).status is RunStatus.SUCCEEDED for r in run_ids)
    stats = measure(store.redis, store.keys)
    assert stats.runs == 200 and stats.finished == 200 and stats.kinds["run"].keys == 200
    assert stats.oldest_finished is not None

    time.sleep(2.1)  # the plans' retention
    removed = 0

    def swept() -> bool:
        nonlocal removed
        removed += store.retention.sweep(limit=100).removed
        return removed == 200

    wait_for(swept, 30, "every run removed")
    cluster_client = store.redis
    left = leftovers(cluster_client, store.keys)
    assert set(left) == {"plan"}, {kind: found[:3] for kind, found in left.items()}
    assert store.runs.page(RunQuery()).runs == []


def test_dead_letters_are_kept_and_listed_across_shards(orchestra: Orchestra) -> None:
    letters = orchestra.store.dead_letters
    made = [
        letters.record(
            "undecodable", f"bad {i}", body=b"\x80", headers={}, queue="q", content_type=None, content_encoding=None
        )
        for i in range(12)
    ]
    assert len({orchestra.store.keys.shard(letter.id).index for letter in made}) > 1
    assert [letter.id for letter in letters.list(limit=5)] == [letter.id for letter in reversed(made)][:5]
    letters.remove(made[0].id)
    assert made[0].id not in {letter.id for letter in letters.list()}
    assert letters.get(made[1].id).error == "bad 1"


def test_leases_and_the_outbox_are_swept_in_every_shard(orchestra: Orchestra) -> None:
    store = orchestra.store
    plan = orchestra.coordinator.compile(orchestra.workflow(ONE_STEP))
    run_ids = [store.keys.new_run_id() for _ in range(40)]
    for run_id in run_ids:
        store.runs.create(NewRun(run_id, plan, {}, Trigger.API, publish_grace=0))
    expired = store.leases.expired(time.time() + 1, limit=100)
    assert {unit.run_id for unit in expired} == set(run_ids)  # each root's outbox entry, in its own shard
    assert all(unit == Unit(unit.run_id, "only") for unit in expired)
    assert store.leases.server_uptime() > 0


def test_metrics_read_every_shard_and_every_node(orchestra: Orchestra, redis_url: str) -> None:
    from orchestrator.observability import metrics
    from orchestrator.services import backlog

    store = orchestra.store
    now = time.time()
    for run_id in (store.keys.new_run_id() for _ in range(30)):
        store.redis.zadd(store.keys.shard(run_id).expiring(), {run_id: now - 5})
        store.redis.zadd(store.keys.shard(run_id).archiving(), {run_id: now - 60})
    collector = backlog(orchestra.settings, store, redis_url, lambda: ())
    gauges = {s.name: s.value for family in collector.collect() for s in family.samples}
    assert gauges[metrics.BACKLOG_UP] == 1
    assert gauges[metrics.RETENTION_DUE] == 30 and gauges[metrics.HISTORY_BACKLOG] == 30
    assert 59 <= gauges[metrics.HISTORY_BACKLOG_AGE] < 90
    assert gauges[metrics.STORE_KEYS] >= 2 and gauges[metrics.STORE_MEMORY] > 0


def test_without_a_redis_broker_the_result_backend_is_none_and_with_one_it_is_the_broker() -> None:
    from config import Settings
    from workers.celery_config import celery_config

    store = "redis+cluster://127.0.0.1:7000"
    on_redis = celery_config(Settings(broker_url="redis://b:6379/0", store_url=store), "redis://b:6379/0", store)
    assert on_redis["result_backend"] == "redis://b:6379/0"
    on_amqp = celery_config(Settings(broker_url="amqp://b//", store_url=store), "amqp://b//", store)
    assert on_amqp["result_backend"] is None
