"""``POST /v1/hooks/{name}``: a signed delivery from another system starts the workflows bound to the hook.

The signature is checked over the raw body before anything parses it (a delivery is
authenticated by its signature, not by a token). The delivery id is the submission's idempotency
key, so a re-delivery answers with the run the first one started. Every bound workflow's filter
and params are worked out before anything is submitted: a body that does not fit is a 422 and
starts nothing.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Path, Request, Response

from orchestrator.api.problems import RESPONSES
from orchestrator.api.runs import services
from orchestrator.api.schemas import HookResponse, HookRun
from orchestrator.definition.models import Workflow
from orchestrator.definition.params import resolve_params
from orchestrator.engine.records import Trigger
from orchestrator.observability.metrics import WEBHOOK_DELIVERIES
from orchestrator.services import Services
from orchestrator.triggers.webhooks import Delivery, params_of, verify, wanted

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", responses={k: v for k, v in RESPONSES.items() if k != 403})

SIGNATURE_HEADERS = {
    "webhook-id": "Standard Webhooks: the delivery id (a re-delivery keeps it).",
    "webhook-timestamp": "Standard Webhooks: seconds since the epoch; refused when more than 5 minutes away.",
    "webhook-signature": "Standard Webhooks: `v1,<base64 HMAC-SHA256 of id.timestamp.body>`, space-separated.",
    "X-Hub-Signature-256": "GitHub preset: `sha256=<hex HMAC-SHA256 of the body>`.",
    "X-GitHub-Delivery": "GitHub preset: the delivery id.",
}


@router.post(
    "/hooks/{name}",
    status_code=202,
    response_model=HookResponse,
    responses={200: {"model": HookResponse, "description": "A re-delivery: the runs its first delivery started"}},
    summary="Deliver a signed event",
    openapi_extra={
        "parameters": [
            {"name": name, "in": "header", "required": False, "schema": {"type": "string"}, "description": text}
            for name, text in SIGNATURE_HEADERS.items()
        ],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {}}}},
    },
)
async def deliver(
    name: Annotated[str, Path(min_length=1, max_length=100)], request: Request, response: Response
) -> Any:
    """Verify the delivery's signature (the hook's scheme and secret), then start each bound workflow
    whose ``when`` holds for the body, with params mapped from it. 401 for any signature problem,
    422 naming the field when the body does not fit, 202 ``{run_id: null, reason}`` when filtered out."""
    body = await request.body()
    svc = services(request)
    bound = await anyio.to_thread.run_sync(lambda: svc.registry().bound(name))
    hook = bound[0].webhook
    assert hook is not None
    secrets = svc.settings.webhook_secrets.get(hook.secret, ())
    if not secrets:
        log.warning("hook %s names secret %r, which ORCH_WEBHOOK_SECRETS does not have", name, hook.secret)
    delivery = verify(hook, secrets, body, request.headers)
    fitting = _fitting(bound, delivery)
    if not fitting:
        WEBHOOK_DELIVERIES.labels(name, "filtered").inc()
        return HookResponse(run_id=None, reason="the hook's `when` filter does not hold for this delivery")
    runs = await anyio.to_thread.run_sync(lambda: _submit(svc, name, delivery, fitting))
    repeated = not any(run.created for run in runs)
    response.status_code = 200 if repeated else 202
    WEBHOOK_DELIVERIES.labels(name, "repeated" if repeated else "started").inc()
    return HookResponse(run_id=runs[0].run_id, runs=runs)


def _fitting(bound: tuple[Workflow, ...], delivery: Delivery) -> list[tuple[Workflow, dict[str, Any]]]:
    """The workflows this delivery starts with their checked params; raises before anything starts."""
    fitting = []
    for workflow in bound:
        hook = workflow.webhook
        assert hook is not None
        if wanted(hook, delivery.event):
            params = params_of(hook, delivery.event)
            resolve_params(workflow.params, params)  # InvalidParams (422) before any run starts
            fitting.append((workflow, params))
    return fitting


def _submit(
    svc: Services, hook: str, delivery: Delivery, fitting: list[tuple[Workflow, dict[str, Any]]]
) -> list[HookRun]:
    runs = []
    for workflow, params in fitting:
        submitted = svc.coordinator.submit(
            workflow,
            params,
            trigger=Trigger.WEBHOOK,
            started_by=delivery.started_by(hook),
            idempotency_key=delivery.idempotency_key(hook),
        )
        runs.append(HookRun(workflow=workflow.workflow, run_id=submitted.run_id, created=submitted.created))
    return runs
