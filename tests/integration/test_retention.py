"""Retention soak: 5,000 runs kept 2 s each, removed by a real worker's janitor; Redis comes back to where it was.

A private ``redis-server`` holds nothing but this test, so its ``used_memory`` is a baseline that
means something. After a warm-up (the worker's queue bindings, the scripts and the plans are
there, and stay), :data:`THROUGH_WORKER` runs are submitted and run by the worker, and the other
runs are run in this process through the store's own scripts, as a worker runs them (the same
claims, fan-outs and completions, a hundred times faster than a busy 2-core machine runs 5,000
Celery tasks). The worker's sweeper removes every run two seconds after it ended. Once the last is
gone, memory must be back at the baseline within :data:`MARGIN`, and a scan of the namespace must
find no key of any run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from orchestrator.engine.context import StepReads
from orchestrator.engine.ports import NewRun
from orchestrator.engine.records import Outcome, Trigger
from orchestrator.engine.unit import StepMessage, Unit
from orchestrator.plan.compiler import Plan
from orchestrator.store import RedisRunStore
from orchestrator.store.keys import Keys
from tests.integration.conftest import Orchestra, RedisServer

pytestmark = pytest.mark.integration

RUNS = 5000
THROUGH_WORKER = 100
"""Of the runs, those submitted and run by the worker process, end to end."""
FAN_EVERY = 50
"""Every this many runs is one that fans out over three items (item hashes, inputs, outputs)."""
RETENTION = "2s"
MARGIN = 256 * 1024
"""Bytes ``used_memory`` may be off its baseline once every run is gone (allocator rounding, the
keyspace's hash table not shrunk yet, client buffers)."""
LEFT_KINDS = {"plan", "broker", "lock"}
"""What the namespace may still hold once every run is gone: the two plans, the worker's queue
bindings, and the sweep lock of the moment."""

CHAIN: dict[str, Any] = {
    "workflow": "soak-chain",
    "retention": RETENTION,
    "steps": {
        "first": {"task": "t.items", "args": {"count": 2}},
        "second": {"task": "t.items", "needs": ["first"], "args": {"count": 1}},
    },
}
FAN: dict[str, Any] = {
    "workflow": "soak-fan",
    "retention": RETENTION,
    "steps": {
        "list": {"task": "t.items", "args": {"count": 3}},
        "each": {
            "task": "t.items",
            "needs": ["list"],
            "for_each": "${steps.list.output}",
            "args": {"count": "${item}"},
        },
        "last": {"task": "t.items", "needs": ["each"], "args": {"count": 1}},
    },
}


def run_here(store: RedisRunStore, plan: Plan, run_id: str) -> None:
    """Record a run and run its steps in order through the store's scripts, as a worker would."""
    assert plan.definition.retention is not None
    store.runs.create(NewRun(run_id, plan, {}, Trigger.API, 60, retention=plan.definition.retention))
    for name, spec in plan.steps.items():
        unit = Unit(run_id, name)
        store.steps.claim_and_read(StepMessage.of(unit, plan.plan_id), f"{run_id}-{name}", "here", 60, StepReads())
        output: Any = [0, 1]
        if spec.fan_out:
            output = [0, 1, 2]
            store.steps.start_fan_out(unit, output)
            store.steps.fanned_out(unit, 60)
            for i in output:
                item = Unit(run_id, name, i)
                task_id = f"{run_id}-{name}-{i}"
                store.steps.claim_and_read(StepMessage.of(item, plan.plan_id), task_id, "here", 60, StepReads())
                store.steps.complete_item(item, task_id, Outcome.succeeded(list(range(i))), lease_seconds=60)
        store.steps.complete(plan, unit, f"{run_id}-{name}", Outcome.succeeded(output), lease_seconds=60)


def used_memory(client: Redis) -> int:
    return int(client.info("memory")["used_memory"])


def wait_for(check: Callable[[], bool], timeout: float, what: str, every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} after {timeout}s")
        time.sleep(every)


def leftovers(client: Redis, keys: Keys) -> dict[str, list[str]]:
    """The namespace's keys by kind (a scan by prefix: what the janitor never does)."""
    found: dict[str, list[str]] = {}
    for key in client.scan_iter(match=f"{keys.prefix}:*", count=1000):
        found.setdefault(keys.kind(key) or "other", []).append(key)
    return found


def test_5000_runs_leave_no_key_and_no_memory_behind_once_their_retention_is_over(
    redis_server: Callable[..., RedisServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = redis_server()
    client = Redis.from_url(server.url, decode_responses=True)
    prefix = "soak"
    monkeypatch.setenv("ORCH_STORE_URL", server.url)
    monkeypatch.setenv("ORCH_KEY_PREFIX", prefix)
    orchestra = Orchestra(server.url, prefix, tmp_path, client)
    store, keys = orchestra.store, orchestra.store.keys
    try:
        orchestra.worker(concurrency=2)
        chain, fan = orchestra.workflow(CHAIN), orchestra.workflow(FAN)
        plans = {w.name: orchestra.coordinator.compile(w) for w in (chain, fan)}

        def all_gone() -> bool:
            return client.zcard(keys.runs()) == 0 and client.zcard(keys.expiring()) == 0

        for workflow in (chain, fan):  # warm-up: what stays (plans, scripts, bindings) is there
            orchestra.wait(orchestra.coordinator.submit(workflow).run_id, timeout=30)
            run_here(store, plans[workflow.name], f"warm-{workflow.name}")
        wait_for(all_gone, 30, "the warm-up runs removed")
        time.sleep(1.0)
        baseline = used_memory(client)

        started = time.monotonic()
        peak, most_keys = baseline, 0

        def measured() -> None:
            nonlocal peak, most_keys
            peak = max(peak, used_memory(client))
            most_keys = max(most_keys, int(client.dbsize()))

        for n in range(THROUGH_WORKER):
            orchestra.coordinator.submit(fan if n % FAN_EVERY == 0 else chain)
        for n in range(RUNS - THROUGH_WORKER):
            run_here(store, plans["soak-fan" if n % FAN_EVERY == 0 else "soak-chain"], f"here-{n}")
            if n % 250 == 0:
                measured()
        ran = time.monotonic() - started

        def gone_and_measured() -> bool:
            measured()
            return all_gone()

        wait_for(gone_and_measured, 60, f"all {RUNS} runs removed", every=0.25)
        removed = time.monotonic() - started
        left = leftovers(client, keys)
        wait_for(lambda: abs(used_memory(client) - baseline) <= MARGIN, 10, "memory back at its baseline", 0.5)
        final = used_memory(client)
    finally:
        orchestra.close()

    print(
        f"\nretention soak: {RUNS} runs ({THROUGH_WORKER} on the worker, {RUNS // FAN_EVERY} fanned out), retention "
        f"{RETENTION}; all ended {ran:.1f}s and all removed {removed:.1f}s after the first started; used_memory "
        f"baseline {baseline:,} B, peak {peak:,} B ({most_keys:,} keys), after {final:,} B ({final - baseline:+,} B)"
    )
    assert set(left) <= LEFT_KINDS, {kind: found[:5] for kind, found in left.items() if kind not in LEFT_KINDS}
    assert len(left.get("plan", [])) == 2
    assert peak - baseline > 20 * MARGIN, "the runs never took memory: the soak measured nothing"
