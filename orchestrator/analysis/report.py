"""What ``orchestrator plan`` prints: the canvas, runtime joins, critical path, widest level, message size.

Computed when someone asks, never on the submit path: the engine executes the plan's tables,
and none of this changes what runs or the plan's id.
"""

from __future__ import annotations

from enum import StrEnum

from orchestrator.analysis import canvas as cv
from orchestrator.definition.models import Model
from orchestrator.engine.unit import StepMessage
from orchestrator.plan.compiler import Plan

RUN_ID_EXAMPLE = "0" * 32


class CanvasRole(StrEnum):
    """How a step starts, in Celery canvas terms."""

    ROOT = "root"
    """No needs: part of the first group."""
    LINK = "link"
    """One need: a link of a chain."""
    CHORD = "chord"
    """Several needs that canvas expresses exactly: the body of a chord (group -> step)."""
    RUNTIME = "runtime"
    """Several needs in a block that is not series-parallel: only a runtime join expresses them."""


class StepReport(Model):
    """One step of the report: its role in the canvas and the policy it runs with."""

    canvas_role: CanvasRole
    needs: tuple[str, ...]
    queue: str
    timeout: float | None
    max_attempts: int


class PlanReport(Model):
    """The analysis of one plan."""

    workflow: str
    plan_id: str
    steps: int
    canvas: str
    runtime_joins: dict[str, tuple[str, ...]]
    fan_out: tuple[str, ...]
    critical_path: tuple[str, ...]
    widest_level: int
    widest_level_steps: tuple[str, ...]
    largest_message_bytes: int
    levels: int
    steps_detail: dict[str, StepReport]


def report(plan: Plan) -> PlanReport:
    """Analyse a plan: canvas notation, runtime joins, critical path, widest level, message size."""
    dag = plan.dag()
    tree = cv.decompose(dag)
    runtime = cv.runtime_joins(tree)
    levels: dict[int, list[str]] = {}
    for name, level in dag.levels.items():
        levels.setdefault(level, []).append(name)
    widest = max(levels.values(), key=len, default=[])
    path, _ = dag.longest_path(dict.fromkeys(dag.needs, 1.0))
    fan_out = tuple(n for n, s in plan.steps.items() if s.fan_out)
    largest = max(
        (
            StepMessage(
                run_id=RUN_ID_EXAMPLE,
                plan_id=plan.plan_id,
                step=n,
                attempt=s.policy.retry.max_attempts,
                item=0 if s.fan_out else None,
            ).size()
            for n, s in plan.steps.items()
        ),
        default=0,
    )
    detail = {
        name: StepReport(
            canvas_role=canvas_role(step.needs, name in runtime),
            needs=step.needs,
            queue=step.policy.queue,
            timeout=step.policy.timeout,
            max_attempts=step.policy.retry.max_attempts,
        )
        for name, step in plan.steps.items()
    }
    return PlanReport(
        workflow=plan.workflow,
        plan_id=plan.plan_id,
        steps=len(plan.steps),
        canvas=cv.render(tree, frozenset(fan_out)),
        runtime_joins=dict(runtime),
        fan_out=fan_out,
        critical_path=tuple(path),
        widest_level=len(widest),
        widest_level_steps=tuple(widest),
        largest_message_bytes=largest,
        levels=len(levels),
        steps_detail=detail,
    )


def canvas_role(needs: tuple[str, ...], runtime_join: bool) -> CanvasRole:
    """The role of a step with these needs; ``runtime_join`` when the canvas cannot express its join."""
    if not needs:
        return CanvasRole.ROOT
    if runtime_join and len(needs) > 1:
        return CanvasRole.RUNTIME
    return CanvasRole.LINK if len(needs) == 1 else CanvasRole.CHORD
