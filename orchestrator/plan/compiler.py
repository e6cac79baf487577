"""The compiler: a pure function from a :class:`Workflow` to an executable :class:`Plan`.

The plan is what workers execute: for each step its needs (the join it waits on), its
dependents (whom its outcome is reported to) and its resolved policy. It is stored once per
definition version, content-addressed by :attr:`Plan.plan_id`; messages only name a step.
:func:`report` adds the analysis ``orchestrator plan`` prints: the canvas, the runtime joins, the
critical path, the widest level and the largest message.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum

from pydantic import Field

from orchestrator.analysis import canvas as cv
from orchestrator.definition.graph import Dag
from orchestrator.definition.models import Model, Policy, TriggerRule, Workflow
from orchestrator.engine.unit import StepMessage
from orchestrator.plan.policy import ResolvedPolicy, resolve

RUN_ID_EXAMPLE = "0" * 32


class JoinKind(StrEnum):
    """How a step is started, in Celery canvas terms."""

    ROOT = "root"  # no needs: part of the first group
    LINK = "link"  # one need: a chain link
    CHORD = "chord"  # several needs that canvas expresses exactly (group -> step)
    RUNTIME = "runtime"  # several needs in a non-series-parallel block: a runtime join


class StepPlan(Model):
    """One step as workers execute it."""

    name: str
    task: str
    needs: tuple[str, ...]
    dependents: tuple[str, ...]
    trigger_rule: TriggerRule
    join: JoinKind
    policy: ResolvedPolicy
    fan_out: bool = False


class HookPlan(Model):
    task: str
    queue: str


class Plan(Model):
    """The compiled, executable form of a workflow. Immutable and JSON-serialisable.

    Attributes:
        plan_id: Content hash of the definition and the base policy: equal plans, equal ids.
        definition_hash: Content hash of the definition alone (recorded on each run).
        definition: The workflow itself (workers render args and conditions from it).
        steps: Every step, in topological order.
    """

    plan_id: str
    definition_hash: str
    definition: Workflow
    steps: dict[str, StepPlan]
    roots: tuple[str, ...]
    on_success: HookPlan | None = None
    on_failure: HookPlan | None = None
    base_policy: Policy = Field(default_factory=Policy)

    @property
    def workflow(self) -> str:
        return self.definition.workflow

    def dag(self) -> Dag:
        return Dag({name: step.needs for name, step in self.steps.items()})


def definition_hash(workflow: Workflow) -> str:
    """A stable hash of what a definition says (key order and formatting do not matter)."""
    canonical = json.dumps(workflow.dump(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def compile_workflow(workflow: Workflow, base: Policy | None = None) -> Plan:
    """Compile a validated workflow.

    Args:
        workflow: A definition that passed validation (acyclic, needs exist).
        base: The project-wide policy layer from settings (queue, timeout, retry defaults).

    Returns:
        The plan; pure and deterministic.
    """
    base = base or Policy()
    dag = Dag({name: tuple(dict.fromkeys(step.needs)) for name, step in workflow.steps.items()})
    tree = cv.decompose(dag)
    runtime = cv.runtime_joins(tree)
    # Most steps set the same policy fields (usually none): resolve each distinct set once.
    # The key holds every field ``Step.policy`` reads; the models are frozen, hence hashable.
    policies: dict[tuple[object, ...], ResolvedPolicy] = {}
    steps: dict[str, StepPlan] = {}
    for name in dag.order:
        step = workflow.steps[name]
        needs = dag.needs[name]
        layer = (step.queue, step.timeout, step.soft_timeout, step.retry)
        policy = policies.get(layer)
        if policy is None:
            policy = policies[layer] = resolve([base, workflow.defaults, step.policy])
        steps[name] = StepPlan(
            name=name,
            task=step.task,
            needs=needs,
            dependents=dag.dependents[name],
            trigger_rule=step.trigger_rule,
            join=_join_kind(needs, name in runtime),
            policy=policy,
            fan_out=step.for_each is not None,
        )
    definition = definition_hash(workflow)
    hooks = {}
    for key in ("on_success", "on_failure"):
        hook = getattr(workflow, key)
        if hook is not None:
            queue = hook.queue or resolve([base, workflow.defaults]).queue
            hooks[key] = HookPlan(task=hook.task, queue=queue)
    base_hash = hashlib.sha256(base.model_dump_json().encode()).hexdigest()
    return Plan(
        plan_id=hashlib.sha256(f"{definition}:{base_hash}".encode()).hexdigest()[:24],
        definition_hash=definition,
        definition=workflow,
        steps=steps,
        roots=tuple(n for n in dag.order if not dag.needs[n]),
        base_policy=base,
        **hooks,
    )


def _join_kind(needs: tuple[str, ...], runtime: bool) -> JoinKind:
    if not needs:
        return JoinKind.ROOT
    if runtime and len(needs) > 1:
        return JoinKind.RUNTIME
    return JoinKind.LINK if len(needs) == 1 else JoinKind.CHORD


class PlanReport(Model):
    """What ``orchestrator plan`` prints."""

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


def report(plan: Plan) -> PlanReport:
    """Analyse a plan: canvas notation, runtime joins, critical path, widest level, message size."""
    dag = plan.dag()
    tree = cv.decompose(dag)
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
    return PlanReport(
        workflow=plan.workflow,
        plan_id=plan.plan_id,
        steps=len(plan.steps),
        canvas=cv.render(tree, frozenset(fan_out)),
        runtime_joins=dict(cv.runtime_joins(tree)),
        fan_out=fan_out,
        critical_path=tuple(path),
        widest_level=len(widest),
        widest_level_steps=tuple(widest),
        largest_message_bytes=largest,
        levels=len(levels),
    )
