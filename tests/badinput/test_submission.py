"""Bad submissions through the Python API (``Coordinator``): InvalidParams naming every bad param,
RunNotFound for unknown ids, and nothing recorded, not even the plan."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from config import Settings
from orchestrator.broker.dispatch import CeleryDispatcher
from orchestrator.definition.loader import load_text
from orchestrator.engine.coordinator import Coordinator
from orchestrator.errors import InvalidParams, RunNotFound
from orchestrator.plan.policy import base_policy
from orchestrator.store import RedisRunStore
from orchestrator.store.connections import redis_client
from orchestrator.store.keys import Keys
from tests.badinput.cases import SUBMIT_CASES, SubmitCase
from tests.badinput.conftest import TYPED, Store
from workers.app import create_app


@pytest.fixture(scope="module")
def coordinator(store: Store, redis_url: str) -> Iterator[Coordinator]:
    app = create_app(Settings(broker_url=redis_url, store_url=redis_url, key_prefix=store.prefix))
    runs = RedisRunStore(redis_client(redis_url), Keys(store.prefix))
    yield Coordinator(runs, CeleryDispatcher(app), base_policy=base_policy(), lease_seconds=15)
    app.close()
    runs.redis.close()


def test_every_id_is_unique() -> None:
    assert len({case.id for case in SUBMIT_CASES}) == len(SUBMIT_CASES)


@pytest.mark.parametrize("case", SUBMIT_CASES, ids=[case.id for case in SUBMIT_CASES])
def test_bad_params_are_refused_before_anything_is_recorded(
    coordinator: Coordinator, store: Store, case: SubmitCase
) -> None:
    workflow = load_text(TYPED, "typed.yaml")
    before = store.snapshot()

    with pytest.raises(InvalidParams) as info:
        coordinator.submit(workflow, case.params)

    assert info.value.problems == case.problems
    store.assert_unchanged(before)


@pytest.mark.parametrize("action", ["get", "cancel", "retry"])
@pytest.mark.parametrize("run_id", ["0" * 32, "", "*", "{x}", "x" * 10_000])
def test_unknown_run_ids(coordinator: Coordinator, store: Store, action: str, run_id: str) -> None:
    method: Any = getattr(coordinator, action)
    before = store.snapshot()

    with pytest.raises(RunNotFound, match="no run with id"):
        method(run_id) if action == "get" else method(run_id, "user:test")

    store.assert_unchanged(before)
