"""Fixtures of the history's tests: the hot store on the test Redis, the history on the test PostgreSQL.

Each test has its own key prefix; the history database is the test run's (``history_url``), and
tests stay apart in it by run id (and by workflow name where they list runs).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest
from redis import Redis
from typer.testing import CliRunner

from config import get_settings
from orchestrator.history import Exporter
from orchestrator.history.postgres import History
from orchestrator.store import RedisRunStore
from orchestrator.store.keys import Keys
from tests.integration.conftest import ROOT


@pytest.fixture
def store(redis_client: Redis, key_prefix: str) -> RedisRunStore:
    return RedisRunStore(redis_client, Keys(key_prefix))


@pytest.fixture
def history(history_url: str) -> Iterator[History]:
    opened = History.open(history_url)
    yield opened
    opened.close()


@pytest.fixture
def exporter(store: RedisRunStore, history: History) -> Exporter:
    return Exporter(store.archive, history.writer, batch_size=50)


def env(redis_url: str, key_prefix: str, history_url: str | None) -> dict[str, str]:
    """The environment of an ``orchestrator`` subprocess on this test's namespace and history."""
    found = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    found.update(ORCH_BROKER_URL=redis_url, ORCH_KEY_PREFIX=key_prefix, PYTHONPATH=str(ROOT))
    if history_url is not None:
        found["ORCH_HISTORY_URL"] = history_url
    return found


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "orchestrator", *args]


@pytest.fixture
def cli(redis_url: str, key_prefix: str, history_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """The command line in process, on this test's namespace and the history."""
    monkeypatch.setenv("ORCH_BROKER_URL", redis_url)
    monkeypatch.setenv("ORCH_KEY_PREFIX", key_prefix)
    monkeypatch.setenv("ORCH_HISTORY_URL", history_url)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()
