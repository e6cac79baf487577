"""The compiler: a pure function from a :class:`Workflow` to the :class:`Plan` the engine executes.

The plan says, for each step, its needs (what its join waits for), its dependents (whom its
outcome is reported to), its trigger rule and its resolved policy. It is stored once per
definition and settings layer, content-addressed by :attr:`Plan.plan_id`; messages only name a
step. How the DAG maps onto Celery canvas is analysis, not execution: :mod:`orchestrator.analysis`
computes it when ``orchestrator plan`` asks.
"""

from __future__ import annotations

import hashlib
import json

from pydantic import Field

from orchestrator.definition.graph import Dag
from orchestrator.definition.models import Model, Policy, TriggerRule, Workflow
from orchestrator.plan.policy import ResolvedPolicy, base_policy, resolve


class StepPlan(Model):
    """One step as workers execute it."""

    name: str
    task: str
    needs: tuple[str, ...]
    dependents: tuple[str, ...]
    trigger_rule: TriggerRule
    policy: ResolvedPolicy
    fan_out: bool = False


class HookPlan(Model):
    """A task sent with the finished run record (``on_success`` / ``on_failure``)."""

    task: str
    queue: str


class Plan(Model):
    """The compiled, executable form of a workflow. Immutable and JSON-serialisable.

    Attributes:
        plan_id: Content hash of the definition and the base policy: equal plans, equal ids.
        definition_hash: Content hash of the definition alone (recorded on each run).
        definition: The workflow itself (workers render args and conditions from it).
        steps: Every step, in topological order.
        roots: Steps without needs, started when a run is submitted.
        base_policy: The settings layer the plan was compiled with.
    """

    plan_id: str
    definition_hash: str
    definition: Workflow
    steps: dict[str, StepPlan]
    roots: tuple[str, ...]
    on_success: HookPlan | None = None
    on_failure: HookPlan | None = None
    base_policy: Policy = Field(default_factory=base_policy)

    @property
    def workflow(self) -> str:
        return self.definition.workflow

    def dag(self) -> Dag:
        return Dag({name: step.needs for name, step in self.steps.items()})

    def to_json(self) -> str:
        """The plan as the run store keeps it: the fields that were set, not every default (a
        third smaller), so that a plan read back is this one, down to what its definition left
        out: a param written without ``default`` is required again, one with ``default: null`` not."""
        return self.model_dump_json(exclude_unset=True)


def definition_hash(workflow: Workflow) -> str:
    """A stable hash of what a definition says (key order and formatting do not matter)."""
    canonical = json.dumps(workflow.dump(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def compile_workflow(workflow: Workflow, base: Policy | None = None) -> Plan:
    """Compile a validated workflow.

    Args:
        workflow: A definition that passed validation (acyclic, needs exist).
        base: The project-wide policy layer from settings (queue, timeout, retry defaults);
            by default the built-in defaults of :class:`config.StepDefaults`.

    Returns:
        The plan; pure and deterministic.
    """
    base = base or base_policy()
    dag = Dag({name: tuple(dict.fromkeys(step.needs)) for name, step in workflow.steps.items()})
    # Most steps set the same policy fields (usually none): resolve each distinct set once.
    # The key holds every field ``Step.policy`` reads; the models are frozen, hence hashable.
    policies: dict[tuple[object, ...], ResolvedPolicy] = {}
    steps: dict[str, StepPlan] = {}
    for name in dag.order:
        step = workflow.steps[name]
        layer = (step.queue, step.timeout, step.soft_timeout, step.retry)
        policy = policies.get(layer)
        if policy is None:
            policy = policies[layer] = resolve([base, workflow.defaults, step.policy])
        steps[name] = StepPlan(
            name=name,
            task=step.task,
            needs=dag.needs[name],
            dependents=dag.dependents[name],
            trigger_rule=step.trigger_rule,
            policy=policy,
            fan_out=step.for_each is not None,
        )
    hooks = {}
    for key in ("on_success", "on_failure"):
        hook = getattr(workflow, key)
        if hook is not None:
            hooks[key] = HookPlan(task=hook.task, queue=hook.queue or resolve([base, workflow.defaults]).queue)
    definition = definition_hash(workflow)
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
