"""The plan cache: a definition compiles once, found by the object or by its content; bounded."""

from __future__ import annotations

import pytest

from orchestrator.definition.models import Step, Workflow
from orchestrator.plan import cache as cache_module
from orchestrator.plan.cache import PlanCache
from orchestrator.plan.compiler import compile_workflow
from orchestrator.plan.policy import base_policy


def workflow(name: str = "test", steps: int = 3) -> Workflow:
    needs = {f"s{i}": Step(task="bench.noop", needs=(f"s{i - 1}",) if i else ()) for i in range(steps)}
    return Workflow.model_validate({"workflow": name, "steps": needs})


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The workflows compiled, by name, in order."""
    seen: list[str] = []

    def counting(wf: Workflow, base: object = None) -> object:
        seen.append(wf.workflow)
        return compile_workflow(wf, base)  # type: ignore[arg-type]

    monkeypatch.setattr(cache_module, "compile_workflow", counting)
    return seen


def test_the_same_workflow_compiles_once(compiles: list[str]) -> None:
    cache, wf = PlanCache(base_policy()), workflow()
    assert cache.plan(wf) is cache.plan(wf)
    assert compiles == ["test"]


def test_an_equal_definition_built_again_finds_the_plan_by_content(compiles: list[str]) -> None:
    cache = PlanCache(base_policy())
    first, again = workflow(), workflow()
    assert first is not again
    assert cache.plan(first) is cache.plan(again)
    assert compiles == ["test"]


def test_a_changed_definition_compiles_its_own_plan(compiles: list[str]) -> None:
    cache = PlanCache(base_policy())
    assert cache.plan(workflow(steps=3)).plan_id != cache.plan(workflow(steps=4)).plan_id
    assert compiles == ["test", "test"]


def test_the_plan_is_what_the_compiler_gives_for_the_cache_base_policy() -> None:
    wf = workflow()
    assert PlanCache(base_policy()).plan(wf) == compile_workflow(wf, base_policy())


def test_the_cache_keeps_at_most_its_size_least_recently_used_out(compiles: list[str]) -> None:
    cache = PlanCache(base_policy(), size=2)
    a, b, c = workflow("a"), workflow("b"), workflow("c")
    cache.plan(a), cache.plan(b), cache.plan(a), cache.plan(c)  # b is the least recently used
    cache.plan(a)
    cache.plan(b)
    assert compiles == ["a", "b", "c", "b"]
