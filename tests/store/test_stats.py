"""``store stats``: every key the store writes has a kind; keys and bytes by kind; the oldest finished run."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from redis import Redis
from typer.testing import CliRunner

from config import get_settings
from orchestrator.cli import app
from orchestrator.engine.unit import Unit
from orchestrator.store import RedisRunStore
from orchestrator.store.keys import Keys
from orchestrator.store.stats import measure
from tests.store.test_retention import fan_plan, run_to_end, start


@pytest.fixture
def store(redis_client: Redis, key_prefix: str) -> Iterator[RedisRunStore]:
    yield RedisRunStore(redis_client, Keys(key_prefix))


def test_every_key_the_store_builds_has_its_own_kind() -> None:
    keys = Keys("orch")
    built = {
        "run": keys.run("r"),
        "step": keys.step("r", "s"),
        "item": keys.item("r", "s", 3),
        "output": keys.output("r", "s"),
        "item_outputs": keys.item_outputs("r", "s"),
        "join": keys.join("r", "s"),
        "history": keys.history("r"),
        "item_inputs": keys.item_inputs("r", "s"),
        "removal": keys.removal("r"),
        "runs": keys.runs(),
        "runs_of": keys.runs_of("expiring"),
        "expiring": keys.expiring(),
        "archiving": keys.archiving(),
        "submission": keys.submission("w", "k:1"),
        "schedule": keys.schedule("w", "nightly"),
        "plan": keys.plan("p"),
        "idempotency": keys.idempotency("t", "k"),
        "sensor": keys.sensor("w"),
        "dead_letters": keys.dead_letter_index(),
        "leases": keys.leases(),
        "outbox": keys.outbox(),
        "lock": keys.sweeper_lock(),
        "broker": keys.queue_list("default", 9),
    }
    assert {kind: keys.kind(key) for kind, key in built.items()} == {kind: kind for kind in built}
    assert keys.kind(keys.dead_letters()) == "dead_letters"
    assert keys.kind(keys.history_lock()) == "lock"
    assert keys.kind("orch:something:else") == "other"
    assert keys.kind("orchestra:run:{r}") is None  # another namespace


def test_stats_count_and_measure_every_kind_and_find_the_oldest_finished_run(store: RedisRunStore) -> None:
    plan = fan_plan()
    start(store, plan, "r-running")
    for run_id, retention in (("r-first", 3600), ("r-second", 60)):  # the second is removed first
        start(store, plan, run_id, retention=retention, archive=True)
        run_to_end(store, plan, run_id, items=5)
        time.sleep(0.01)

    stats = measure(store.redis, store.keys, sample=2, now=time.time() + 120)

    counts = {kind: s.keys for kind, s in stats.kinds.items()}
    assert counts == {
        "run": 3,
        "step": 7,  # the running run's root, and 3 steps of each finished run
        "item": 10,
        "output": 6,
        "item_outputs": 2,
        "join": 4,
        "item_inputs": 2,
        "history": 3,
        "runs": 1,
        "runs_of": 1,
        "expiring": 1,
        "archiving": 1,
        "outbox": 1,
        "plan": 1,
    }
    assert all(s.bytes > 0 for s in stats.kinds.values())
    assert stats.kinds["item"].sampled == 2 and stats.kinds["item"].estimated
    assert not stats.kinds["run"].estimated or stats.kinds["run"].sampled == 2
    assert (stats.runs, stats.finished, stats.due, stats.archiving) == (3, 2, 1, 2)
    assert stats.oldest_finished is not None and stats.oldest_finished.run_id == "r-first"
    assert stats.oldest_finished.status == "succeeded" and stats.oldest_finished.workflow == "ret"


def test_the_command_prints_a_table_or_json(
    store: RedisRunStore, redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = fan_plan()
    start(store, plan, "r-done", retention=60)
    run_to_end(store, plan, "r-done", items=2)
    store.redis.zadd(store.keys.leases(), {str(Unit("r-done", "each", 1)): 1.0})
    monkeypatch.setenv("ORCH_BROKER_URL", redis_url)
    monkeypatch.setenv("ORCH_KEY_PREFIX", key_prefix)
    get_settings.cache_clear()
    try:
        shown = CliRunner().invoke(app, ["store", "stats", "--json"])
        table = CliRunner().invoke(app, ["store", "stats"])
    finally:
        get_settings.cache_clear()
    assert shown.exit_code == 0, shown.output
    found = json.loads(shown.stdout)
    assert found["kinds"]["item"] == {
        "keys": 2,
        "bytes": found["kinds"]["item"]["bytes"],
        "sampled": 2,
        "estimated": False,
    }
    assert found["total"]["keys"] == sum(k["keys"] for k in found["kinds"].values())
    assert found["oldest_finished"]["run_id"] == "r-done"
    assert (found["runs"], found["finished"], found["due"]) == (1, 1, 0)
    assert table.exit_code == 0, table.output
    assert "leases" in table.stdout and "oldest finished run: r-done (ret, succeeded)" in table.stdout
