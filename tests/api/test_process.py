"""The API app and the process it runs in: its directory's workflows compiled as it starts, and the heap
frozen once the app that is the process's has started."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from config import Settings
from orchestrator.api.app import create_api
from orchestrator.plan import cache


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """This test process's collector as it was: nothing frozen before, nothing frozen after."""
    gc.unfreeze()
    yield
    gc.unfreeze()


@pytest.fixture
def settings(redis_url: str, key_prefix: str, tmp_path: Path) -> Settings:
    return Settings(broker_url=redis_url, store_url=redis_url, key_prefix=key_prefix, workflows_dir=tmp_path)


def frozen_once_started(settings: Settings, own_process: bool) -> tuple[int, int]:
    """Objects frozen before the app's lifespan starts, and once it has."""

    async def start() -> tuple[int, int]:
        api = create_api(settings, own_process=own_process)
        before = gc.get_freeze_count()
        async with api.router.lifespan_context(api):
            return before, gc.get_freeze_count()

    return anyio.run(start)


def test_the_process_app_freezes_the_heap_once_started(unfrozen: None, settings: Settings) -> None:
    # what `orchestrator api` serves (factory): startup's objects leave the cyclic collector's scans
    before, started = frozen_once_started(settings, own_process=True)
    assert before == 0
    assert started > 10_000  # modules, the app, its connections: all of startup


def compiled_as_it_starts(settings: Settings, monkeypatch: pytest.MonkeyPatch, failing: str = "") -> list[str]:
    """The workflows (``alpha``, ``beta``) compiled by the time the API has started, and after a submit
    of ``alpha``: the same, or ``alpha`` once more when the start compiled nothing. ``failing``'s
    compile raises."""
    assert settings.workflows_dir is not None
    for name in ("alpha", "beta"):
        (settings.workflows_dir / f"{name}.yaml").write_text(f"workflow: {name}\nsteps:\n  a: {{task: demo.fetch}}\n")
    compiled: list[str] = []
    real = cache.compile_workflow

    def compile_workflow(workflow: Any, base: Any) -> Any:
        compiled.append(workflow.workflow)
        if workflow.workflow == failing:
            raise RuntimeError("a compiler bug")
        return real(workflow, base)

    monkeypatch.setattr(cache, "compile_workflow", compile_workflow)
    api = create_api(settings, own_process=True)

    async def start() -> list[str]:
        async with api.router.lifespan_context(api):
            started = sorted(compiled)
            svc = api.state.services
            svc.coordinator.submit(svc.registry().get("alpha"))
            return started + ["then"] + sorted(compiled)

    return anyio.run(start)


def test_the_app_compiles_its_directory_s_workflows_as_it_starts_and_no_submit_compiles_them_again(
    unfrozen: None, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # before the heap froze, with it
    assert compiled_as_it_starts(settings, monkeypatch) == ["alpha", "beta", "then", "alpha", "beta"]


def test_a_workflow_that_fails_to_compile_at_start_leaves_the_api_serving_the_others(
    unfrozen: None, settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert compiled_as_it_starts(settings, monkeypatch, failing="beta") == ["alpha", "beta", "then", "alpha", "beta"]
    assert "could not compile workflow beta" in caplog.text


def test_compile_at_start_off_leaves_each_compile_to_the_first_submit(
    unfrozen: None, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.api.compile_at_start = False
    assert compiled_as_it_starts(settings, monkeypatch) == ["then", "alpha"]


def test_an_app_mounted_in_another_process_leaves_its_collector_alone(unfrozen: None, settings: Settings) -> None:
    assert frozen_once_started(settings, own_process=False) == (0, 0)
