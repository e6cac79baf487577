"""A master of the run store's cluster fails over to its replica (``CLUSTER FAILOVER``) while runs run.

The cluster here is the test's own: the failover swaps its roles. The workers' and the
coordinator's clients follow the slots to the promoted replica (redis-py's cluster client
refreshes its map on ``MOVED``), scripts are loaded again there on ``NOSCRIPT``, and every run
finishes with each side effect done once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from redis.crc import key_slot

from orchestrator.dev.cluster import LocalCluster, Node, local_cluster
from orchestrator.engine.records import RunStatus
from tests.cluster.conftest import running_orchestra
from tests.integration.conftest import Orchestra

pytestmark = pytest.mark.integration

RUNS = 6
ITEMS = 20
WORKFLOW: dict[str, Any] = {
    "workflow": "failover",
    "params": {"tag": {"type": "string"}},
    "steps": {
        "first": {"task": "t.effect", "args": {"name": "first-${params.tag}", "sleep": 0.3}},
        "list": {"task": "t.items", "needs": ["first"], "args": {"count": ITEMS}},
        "each": {
            "task": "t.effect",
            "needs": ["list"],
            "for_each": "${steps.list.output}",
            "args": {"name": "item-${params.tag}-${item}", "sleep": 0.1},
        },
        "last": {"task": "t.effect", "needs": ["each"], "args": {"name": "last-${params.tag}", "sleep": 0.3}},
    },
}


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    with local_cluster(tmp_path / "cluster") as started:
        yield started


@pytest.fixture
def orchestra(cluster: LocalCluster, redis_url: str, key_prefix: str, redis_client: Redis) -> Iterator[Orchestra]:
    with running_orchestra(cluster, redis_url, key_prefix, redis_client) as orch:
        yield orch


def serving(cluster: LocalCluster, slot: int) -> tuple[Node, Node]:
    """The master serving ``slot`` and its replica."""
    with cluster.nodes[0].client() as client:
        ranges = client.execute_command("CLUSTER", "SLOTS")
    for start, end, master, *_ in ranges:
        if start <= slot <= end:
            port = int(master[1])
            break
    else:
        raise AssertionError(f"no master serves slot {slot}")
    master_node = next(n for n in cluster.nodes if n.port == port)
    for node in cluster.nodes:
        with node.client() as client:
            replication = client.info("replication")
        if replication["role"] == "slave" and int(replication["master_port"]) == port:
            return master_node, node
    raise AssertionError(f"the master on port {port} has no replica")


def test_a_master_failing_over_mid_run_loses_nothing_and_repeats_nothing(
    orchestra: Orchestra, cluster: LocalCluster
) -> None:
    orchestra.worker(name="w1", concurrency=2)
    orchestra.worker(name="w2", concurrency=2)
    run_ids = [orchestra.submit(WORKFLOW, {"tag": str(i)}) for i in range(RUNS)]
    keys = orchestra.store.keys
    master, replica = serving(cluster, key_slot(keys.run(run_ids[0]).encode()))
    deadline = time.monotonic() + 30
    while orchestra.effects().get("first-0") is None:  # the first run is under way
        assert time.monotonic() < deadline, "the first run never started"
        time.sleep(0.02)

    with replica.client() as client:
        assert client.execute_command("CLUSTER", "FAILOVER") in ("OK", b"OK", True)
    deadline = time.monotonic() + 20
    while replica.role() != "master" or master.role() != "slave":
        assert time.monotonic() < deadline, "the replica was not promoted"
        time.sleep(0.05)
    failed_over_at = time.monotonic()

    records = [orchestra.wait(run_id, timeout=120) for run_id in run_ids]
    print(f"\ncluster failover: runs finished {time.monotonic() - failed_over_at:.1f}s after the promotion")
    failed = {
        r.run_id: {n: s.error for n, s in r.steps.items() if s.error}
        for r in records
        if r.status is not RunStatus.SUCCEEDED
    }
    logs = "\n".join(f"--- {w.name}\n{w.log.read_text(errors='replace')[-4000:]}" for w in orchestra.workers)
    assert not failed, f"{failed}\n{logs}"
    effects = orchestra.effects()
    expected = {f"{kind}-{i}" for i in range(RUNS) for kind in ("first", "last")}
    expected |= {f"item-{i}-{n}" for i in range(RUNS) for n in range(ITEMS)}
    assert {name for name in effects if name != "order"} == expected
    assert {name: count for name, count in effects.items() if count != 1 and name in expected} == {}
    for record in records:
        assert record.steps["each"].output == [f"item-{record.params['tag']}-{n}" for n in range(ITEMS)]
