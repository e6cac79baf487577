"""``/v1`` routes on workflows: the workflows of ``ORCH_WORKFLOWS_DIR``, their params and diagram."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from config import Scope
from orchestrator.analysis.diagram import mermaid
from orchestrator.api.auth import Caller, requires
from orchestrator.api.problems import RESPONSES
from orchestrator.api.runs import services
from orchestrator.api.schemas import (
    ScheduleInfo,
    SensorInfo,
    StepInfo,
    WebhookInfo,
    WorkflowDetail,
    WorkflowSummary,
)
from orchestrator.definition.models import Workflow
from orchestrator.definition.params import params_schema
from orchestrator.plan.compiler import definition_hash
from orchestrator.triggers.schedules import next_ticks

router = APIRouter(prefix="/v1", responses=RESPONSES)
NEXT_TICKS = 3


def summary(workflow: Workflow) -> WorkflowSummary:
    now = datetime.now(UTC)
    schedules = [
        ScheduleInfo(
            name=s.effective_name,
            cron=s.cron,
            every=s.every,
            timezone=s.timezone,
            overlap=s.overlap.value,
            catchup=s.catchup,
            catchup_limit=s.catchup_limit,
            params=s.params,
            next=[t.isoformat() for t in next_ticks(s, now, NEXT_TICKS)],
        )
        for s in workflow.schedule
    ]
    hook, sensor = workflow.webhook, workflow.sensor
    return WorkflowSummary(
        name=workflow.workflow,
        version=workflow.version,
        description=workflow.description,
        step_count=len(workflow.steps),
        params=params_schema(workflow.params),
        schedules=schedules,
        webhook=WebhookInfo(name=hook.name, scheme=hook.scheme.value, when=hook.when) if hook else None,
        sensor=SensorInfo(
            task=sensor.task, every=sensor.every, when=sensor.when, cooldown=sensor.cooldown, rearm=sensor.rearm.value
        )
        if sensor
        else None,
    )


@router.get("/workflows", response_model=list[WorkflowSummary], summary="The registered workflows")
def list_workflows(request: Request, caller: Annotated[Caller, Depends(requires(Scope.READ))]) -> list[WorkflowSummary]:
    """Every valid workflow file of ``ORCH_WORKFLOWS_DIR``, by name."""
    registry = services(request).registry()
    return [summary(registry.workflows[name]) for name in sorted(registry.workflows)]


@router.get("/workflows/{name}", response_model=WorkflowDetail, summary="One workflow")
def get_workflow(
    name: Annotated[str, Path(min_length=1, max_length=200)],
    request: Request,
    caller: Annotated[Caller, Depends(requires(Scope.READ))],
) -> WorkflowDetail:
    """Its params (as JSON Schema), schedules with their next fire times, steps and diagram."""
    workflow = services(request).registry().get(name)
    steps = [
        StepInfo(
            name=step_name,
            task=step.task,
            needs=list(step.needs),
            trigger_rule=step.trigger_rule.value,
            for_each=step.for_each,
            when=step.when,
        )
        for step_name, step in workflow.steps.items()
    ]
    return WorkflowDetail(
        **summary(workflow).model_dump(),
        definition_hash=definition_hash(workflow),
        steps=steps,
        diagram=mermaid(workflow),
    )
