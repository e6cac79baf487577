"""Shared fixtures: a real Redis for every test that touches state, each test in its own namespace.

Redis is expected on 127.0.0.1:6379 (``ORCH_TEST_REDIS_URL`` overrides), PostgreSQL (the
history's tests) on 127.0.0.1:5432 with trust auth (``ORCH_TEST_POSTGRES_URL``), a database per
test run. When either is not reachable, tests that need it are skipped, except under ``CI=true``
where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from redis import Redis

REDIS_URL = os.environ.get("ORCH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _redis_available() -> bool:
    try:
        return bool(Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except Exception:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the test Redis (skips the test, or fails it under CI, when it is down)."""
    if not _redis_available():
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis is not reachable at {REDIS_URL}; .ci/run starts it")
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    return REDIS_URL


@pytest.fixture
def key_prefix(redis_url: str) -> Iterator[str]:
    """A namespace of its own for this test; every key under it is deleted afterwards."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])
    client.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


# --- PostgreSQL (the durable history) ---------------------------------------------------------------

POSTGRES_URL = os.environ.get("ORCH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
"""A server where the tests may create and drop databases (trust auth on the CI machine)."""


def _postgres_admin() -> psycopg.Connection[Any] | None:
    for url in (POSTGRES_URL, POSTGRES_URL.replace("//postgres@", "//root@", 1)):
        try:
            return psycopg.connect(url, autocommit=True, connect_timeout=3)
        except psycopg.Error:
            continue
    return None


@dataclass
class Postgres:
    """A PostgreSQL server for tests: :meth:`database` makes a database of its own, dropped at the end."""

    admin: psycopg.Connection[Any]
    made: list[str] = field(default_factory=list)

    def database(self) -> str:
        """A new empty database; its URL (psycopg 3 through SQLAlchemy)."""
        name = f"orch_test_{uuid.uuid4().hex[:12]}"
        self.admin.execute(f'CREATE DATABASE "{name}"')
        self.made.append(name)
        info = self.admin.info
        return f"postgresql://{info.user}@{info.host}:{info.port}/{name}"

    def drop_all(self) -> None:
        for name in self.made:
            self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.admin.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """The test PostgreSQL (skips the test, or fails it under CI, when it is down); databases it made
    are dropped when the session ends. ``.ci/services`` starts it."""
    admin = _postgres_admin()
    if admin is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL}; .ci/services starts it")
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL}")
    server = Postgres(admin)
    yield server
    server.drop_all()


@pytest.fixture(scope="session")
def history_url(postgres: Postgres) -> str:
    """The test run's history database, migrated to the current schema (tests stay apart by run id)."""
    from orchestrator.history import schema
    from orchestrator.history.database import history_engine

    url = postgres.database()
    engine = history_engine(url)
    schema.upgrade(engine)
    engine.dispose()
    return url


# Real-process fixtures (workers, private redis-servers) for every suite that needs them.
from tests.integration.conftest import orchestra, redis_server  # noqa: E402, F401
