"""The run store on a real local Redis Cluster (3 masters, a replica each; :mod:`tests.cluster.local`).

Celery's broker stays the machine's Redis (kombu cannot use a cluster), and so do the tasks' side
effects, so a failover can neither roll them back nor hide them. The cluster is started once for
the session; a test that fails a master over starts its own.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from orchestrator.dev.cluster import REDIS_CLI, REDIS_SERVER, LocalCluster, local_cluster
from tests.integration import conftest as integration
from tests.integration.conftest import Orchestra


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.cluster)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    if not (shutil.which(REDIS_SERVER) and shutil.which(REDIS_CLI)):
        pytest.fail("redis-server and redis-cli are needed for the cluster tests (apt install redis-server)")
    with local_cluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield cluster


@contextlib.contextmanager
def running_orchestra(
    cluster: LocalCluster, redis_url: str, key_prefix: str, redis_client: Redis
) -> Iterator[Orchestra]:
    """An :class:`Orchestra` whose run store is ``cluster``; broker and side effects on the machine's Redis."""
    store = {"ORCH_STORE_URL": cluster.url, "ORCH_TEST_EFFECTS_URL": redis_url}
    with integration.running_orchestra(redis_url, key_prefix, redis_client, store) as orch:
        yield orch


@pytest.fixture
def orchestra(redis_cluster: LocalCluster, redis_url: str, key_prefix: str, redis_client: Redis) -> Iterator[Orchestra]:
    with running_orchestra(redis_cluster, redis_url, key_prefix, redis_client) as orch:
        yield orch
