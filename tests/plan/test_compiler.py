"""Workflow -> Plan: the runtime tables (needs, dependents, join kinds) match the DAG exactly, plans are
content-addressed, the report describes the canvas; and policy resolves layer by layer."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config import StepDefaults
from orchestrator.analysis.canvas import decompose, runtime_joins
from orchestrator.analysis.report import CanvasRole, report
from orchestrator.definition.graph import Dag
from orchestrator.definition.models import Backoff, Hook, Param, ParamType, Policy, RetrySpec, Step, Workflow
from orchestrator.plan.compiler import Plan, compile_workflow, definition_hash
from orchestrator.plan.policy import RetryPolicy, base_policy, resolve
from tests.strategies import dags, series_parallel_dags

PROPERTIES = settings(max_examples=150, deadline=None)


def workflow(needs: dict[str, tuple[str, ...]], **fields: object) -> Workflow:
    steps = {name: Step(task="bench.noop", needs=ns) for name, ns in needs.items()}
    return Workflow.model_validate({"workflow": "test", "steps": steps, **fields})


DIAMOND = {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")}
N_SHAPE = {"a": (), "b": (), "c": ("a",), "d": ("a", "b")}


def check_tables(dag: Dag, plan: Plan) -> None:
    """The plan's runtime tables are the DAG itself: direct needs, their inverse, nothing more."""
    assert list(plan.steps) == list(dag.order)
    roles = {name: step.canvas_role for name, step in report(plan).steps_detail.items()}
    for name, step in plan.steps.items():
        assert step.name == name
        assert step.needs == dag.needs[name]
        assert len(set(step.dependents)) == len(step.dependents)
        assert set(step.dependents) == {other for other, ns in dag.needs.items() if name in ns}
        role = roles[name]
        assert (role is CanvasRole.ROOT) == (not step.needs)
        assert (role is CanvasRole.LINK) == (len(step.needs) == 1)
    assert plan.roots == tuple(n for n in dag.order if not dag.needs[n])
    assert plan.dag().closure() == dag.closure()


# --- runtime tables -----------------------------------------------------------------------------


@PROPERTIES
@given(dags())
def test_plan_tables_are_the_dag(dag: Dag) -> None:
    plan = compile_workflow(workflow(dict(dag.needs)))
    check_tables(dag, plan)
    joined = runtime_joins(decompose(dag))
    for name, step in report(plan).steps_detail.items():
        if step.canvas_role is CanvasRole.RUNTIME:
            assert name in joined and len(step.needs) > 1


@PROPERTIES
@given(series_parallel_dags())
def test_series_parallel_plans_need_no_runtime_join(dag: Dag) -> None:
    plan = compile_workflow(workflow(dict(dag.needs)))
    check_tables(dag, plan)
    assert not any(s.canvas_role is CanvasRole.RUNTIME for s in report(plan).steps_detail.values())
    assert report(plan).runtime_joins == {}


def test_diamond_plan() -> None:
    plan = compile_workflow(workflow(DIAMOND))
    assert {n: s.canvas_role for n, s in report(plan).steps_detail.items()} == {
        "a": CanvasRole.ROOT,
        "b": CanvasRole.LINK,
        "c": CanvasRole.LINK,
        "d": CanvasRole.CHORD,
    }
    assert plan.roots == ("a",)
    assert plan.steps["a"].dependents == ("b", "c")
    assert plan.steps["d"].needs == ("b", "c")


def test_non_series_parallel_step_is_joined_at_run_time() -> None:
    plan = compile_workflow(workflow(N_SHAPE))
    roles = report(plan).steps_detail
    assert roles["d"].canvas_role is CanvasRole.RUNTIME
    assert roles["c"].canvas_role is CanvasRole.LINK
    assert plan.steps["c"].needs == ("a",)  # c does not wait for b
    assert plan.roots == ("a", "b")


def test_need_listed_twice_is_one_need() -> None:
    # The loader refuses this; a workflow built in code still compiles to one need.
    plan = compile_workflow(workflow({"a": (), "b": ("a", "a")}))
    assert plan.steps["b"].needs == ("a",)
    assert plan.steps["a"].dependents == ("b",)


def test_cyclic_workflow_is_refused() -> None:
    with pytest.raises(ValueError, match="cycle"):
        compile_workflow(workflow({"a": ("b",), "b": ("a",)}))


# --- identity -----------------------------------------------------------------------------------


def test_plan_is_content_addressed() -> None:
    first = compile_workflow(workflow(DIAMOND))
    again = compile_workflow(workflow(dict(reversed(DIAMOND.items()))))
    assert again.definition_hash == first.definition_hash == definition_hash(first.definition)
    assert again.plan_id == first.plan_id
    other_base = compile_workflow(workflow(DIAMOND), Policy(queue="elsewhere"))
    assert other_base.definition_hash == first.definition_hash
    assert other_base.plan_id != first.plan_id
    changed = compile_workflow(workflow({**DIAMOND, "e": ("d",)}))
    assert changed.definition_hash != first.definition_hash


def test_plan_round_trips_through_json() -> None:
    plan = compile_workflow(workflow(N_SHAPE, on_failure=Hook(task="demo.alert")))
    assert Plan.model_validate_json(plan.model_dump_json()) == plan
    assert Plan.model_validate_json(plan.to_json()) == plan


def test_a_stored_plan_reads_back_with_what_its_definition_left_out() -> None:
    params = {"who": Param(), "note": Param(default=None), "n": Param(type=ParamType.INTEGER, default=3)}
    plan = compile_workflow(workflow(DIAMOND, params=params, on_success=Hook(task="demo.done")))
    stored = plan.to_json()
    read = Plan.model_validate_json(stored)
    assert read == plan
    assert {name: p.required for name, p in read.definition.params.items()} == {"who": True, "note": False, "n": False}
    assert len(stored) < 0.8 * len(plan.model_dump_json())  # the defaults are left out


@PROPERTIES
@given(dags(max_nodes=40))
def test_every_plan_reads_back_from_its_stored_form(dag: Dag) -> None:
    plan = compile_workflow(workflow(dict(dag.needs), defaults=Policy(queue="q", timeout=5)))
    assert Plan.model_validate_json(plan.to_json()) == plan


# --- report -------------------------------------------------------------------------------------


def test_report_of_the_diamond() -> None:
    plan = compile_workflow(workflow(DIAMOND))
    analysis = report(plan)
    assert analysis.canvas == "chain(a, chord(group(b, c), d))"
    assert analysis.runtime_joins == {}
    assert analysis.steps == 4
    assert analysis.levels == 3
    assert analysis.widest_level == 2
    assert analysis.widest_level_steps == ("b", "c")
    assert analysis.critical_path in (("a", "b", "d"), ("a", "c", "d"))
    assert analysis.largest_message_bytes > 0


def test_report_of_a_runtime_join_with_fan_out() -> None:
    steps = {
        "a": Step(task="t.a"),
        "b": Step(task="t.b"),
        "c": Step(task="t.c", needs=("a",), for_each="${steps.a.output}"),
        "d": Step(task="t.d", needs=("a", "b")),
    }
    analysis = report(compile_workflow(Workflow(workflow="test", steps=steps)))
    assert analysis.canvas == "joins(a, b, for_each(c), d; a->c, a->d, b->d)"
    assert analysis.runtime_joins == {"c": ("a",), "d": ("a", "b")}
    assert analysis.fan_out == ("c",)


def test_compiling_10000_steps() -> None:
    # How long it takes is measured in bench/compile.py, not asserted here.
    rnd = random.Random(7)
    names = [f"s{i}" for i in range(10_000)]
    needs = {n: tuple(rnd.sample(names[max(0, i - 50) : i], min(i, 3))) for i, n in enumerate(names)}
    plan = compile_workflow(workflow(needs))
    assert len(plan.steps) == 10_000 and set(plan.roots) == {"s0"}


# --- policy -------------------------------------------------------------------------------------

SETTINGS = base_policy(
    StepDefaults(queue="default", timeout=3600, max_attempts=1, delay=1.0, max_delay=300.0, jitter=True)
)


def test_policy_layers_resolve_field_by_field() -> None:
    defaults = Policy(queue="etl", timeout=300, retry=RetrySpec(max_attempts=3, delay=0.2, backoff=Backoff.FIXED))
    steps = {
        "plain": Step(task="t.x"),
        "own_queue": Step(task="t.x", queue="gpu", timeout=10),
        "more_attempts": Step(task="t.x", retry=RetrySpec(max_attempts=5)),
        "own_retry": Step(task="t.x", retry=RetrySpec(delay=2.0, jitter=False, on=("ValueError",))),
    }
    plan = compile_workflow(Workflow(workflow="test", defaults=defaults, steps=steps), SETTINGS)
    policy = {name: step.policy for name, step in plan.steps.items()}

    assert (policy["plain"].queue, policy["plain"].timeout) == ("etl", 300)
    assert policy["plain"].retry == RetryPolicy(
        max_attempts=3, backoff=Backoff.FIXED, delay=0.2, max_delay=300.0, jitter=True
    )
    assert (policy["own_queue"].queue, policy["own_queue"].timeout) == ("gpu", 10)
    assert policy["own_queue"].retry == policy["plain"].retry
    # The step sets one retry field; the others still come from the workflow and then settings.
    assert policy["more_attempts"].retry == policy["plain"].retry.model_copy(update={"max_attempts": 5})
    assert policy["own_retry"].retry == RetryPolicy(
        max_attempts=3, backoff=Backoff.FIXED, delay=2.0, max_delay=300.0, jitter=False, on=("ValueError",)
    )


def test_settings_layer_applies_when_nothing_else_says() -> None:
    resolved = resolve([SETTINGS, Policy(), None, Step(task="t.x").policy])
    assert resolved.queue == "default"
    assert resolved.timeout == 3600
    assert resolved.soft_timeout is None
    assert resolved.retry == RetryPolicy()
    assert resolve([]) == resolve([None])


def test_hook_queue_falls_back_to_the_workflow_defaults() -> None:
    flow = workflow(
        {"a": ()},
        defaults=Policy(queue="etl"),
        on_failure=Hook(task="demo.alert"),
        on_success=Hook(task="demo.notify", queue="hooks"),
    )
    plan = compile_workflow(flow, SETTINGS)
    assert plan.on_failure is not None and plan.on_failure.queue == "etl"
    assert plan.on_success is not None and plan.on_success.queue == "hooks"


def test_exponential_backoff_doubles_up_to_the_cap() -> None:
    retry = RetryPolicy(backoff=Backoff.EXPONENTIAL, delay=1.0, max_delay=10.0, jitter=False)
    assert [retry.delay_for(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_fixed_backoff_waits_the_same_and_respects_the_cap() -> None:
    assert [RetryPolicy(backoff=Backoff.FIXED, delay=2.0, jitter=False).delay_for(n) for n in (1, 2, 9)] == [2.0] * 3
    assert RetryPolicy(backoff=Backoff.FIXED, delay=10.0, max_delay=3.0, jitter=False).delay_for(4) == 3.0


def test_jitter_draws_from_zero_to_the_capped_delay() -> None:
    retry = RetryPolicy(delay=1.0, max_delay=5.0, jitter=True)
    assert retry.delay_for(3, rand=0.0) == 0.0
    assert retry.delay_for(3, rand=0.5) == 2.0
    assert retry.delay_for(3, rand=1.0) == 4.0
    assert retry.delay_for(10, rand=1.0) == 5.0


@PROPERTIES
@given(
    backoff=st.sampled_from(Backoff),
    delay=st.floats(0, 3600),
    max_delay=st.floats(0, 86400),
    attempt=st.integers(1, 1000),
    rand=st.floats(0, 1),
)
def test_delay_is_within_zero_and_the_cap(
    backoff: Backoff, delay: float, max_delay: float, attempt: int, rand: float
) -> None:
    retry = RetryPolicy(backoff=backoff, delay=delay, max_delay=max_delay, jitter=True)
    plain = retry.model_copy(update={"jitter": False})
    capped = plain.delay_for(attempt)
    assert capped == min(delay if backoff is Backoff.FIXED else delay * 2.0 ** (attempt - 1), max_delay)
    assert 0.0 <= retry.delay_for(attempt, rand) <= capped
    assert retry.delay_for(attempt, rand) == pytest.approx(capped * rand)


def test_retries_only_named_error_types() -> None:
    retry = RetryPolicy(on=("ConnectionError",))
    assert retry.retries(["requests.ConnectionError", "ConnectionError", "OSError"])
    assert not retry.retries(["ValueError", "Exception"])
