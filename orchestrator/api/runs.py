"""``/v1`` routes on runs: submit, read (with a long-poll), list, cancel, retry, history."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import anyio
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from config import Scope
from orchestrator.api.auth import Caller, requires
from orchestrator.api.problems import RESPONSES
from orchestrator.api.schemas import EventPage, RunPageResponse, SubmitRequest, SubmitResponse
from orchestrator.definition.durations import InvalidMoment, parse_duration, parse_window
from orchestrator.engine.ports import RunQuery
from orchestrator.engine.records import RunRecord, RunStatus, Trigger
from orchestrator.errors import InvalidArgument
from orchestrator.services import Services

router = APIRouter(prefix="/v1", responses=RESPONSES)
POLL_FIRST, POLL_LONGEST = 0.05, 1.0
RunId = Annotated[str, Path(min_length=1, max_length=200)]
EVENT_ID = r"^[0-9]{1,20}-[0-9]{1,20}$"


def services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


@router.post(
    "/workflows/{name}/runs",
    status_code=202,
    response_model=SubmitResponse,
    responses={200: {"model": SubmitResponse, "description": "Seen before: the run its idempotency key started"}},
    summary="Start a run",
)
def submit(
    name: Annotated[str, Path(min_length=1, max_length=200)],
    body: SubmitRequest,
    response: Response,
    request: Request,
    caller: Annotated[Caller, Depends(requires(Scope.SUBMIT))],
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
) -> SubmitResponse:
    """Start a run of a workflow of ``ORCH_WORKFLOWS_DIR`` with these params (checked against its declarations).

    The ``Idempotency-Key`` header works as the body's ``idempotency_key``: a second submission
    with the same key for the same workflow answers 200 with the first run, however the two race.
    """
    if idempotency_key and body.idempotency_key and idempotency_key != body.idempotency_key:
        raise InvalidArgument("the Idempotency-Key header and the body's idempotency_key differ", "idempotency_key")
    svc = services(request)
    workflow = svc.registry().get(name)
    submitted = svc.coordinator.submit(
        workflow,
        body.params,
        trigger=Trigger.API,
        started_by=caller.actor,
        idempotency_key=idempotency_key or body.idempotency_key,
    )
    response.status_code = 202 if submitted.created else 200
    return SubmitResponse(run_id=submitted.run_id, created=submitted.created)


@router.get("/runs/{run_id}", response_model=RunRecord, summary="A run's record")
async def get_run(
    run_id: RunId,
    request: Request,
    caller: Annotated[Caller, Depends(requires(Scope.READ))],
    wait: Annotated[
        str | None, Query(description="Long-poll: answer when the run ends, or after this long (30s, 500ms).")
    ] = None,
) -> RunRecord:
    """The run record; with ``wait``, held until the run ends or the wait runs out (at most ``ORCH_API__MAX_WAIT``).

    A run retention removed from Redis is read from the history (``ORCH_HISTORY_URL``).
    """
    svc = services(request)
    if wait is not None:
        deadline = time.monotonic() + _wait(wait, request.app.state.settings.api.max_wait)
        pause = POLL_FIRST
        while True:
            status = await anyio.to_thread.run_sync(svc.runs.status, run_id)
            if status.finished or time.monotonic() >= deadline:
                break
            await asyncio.sleep(min(pause, max(deadline - time.monotonic(), 0)))
            pause = min(pause * 2, POLL_LONGEST)
    return await anyio.to_thread.run_sync(svc.runs.get, run_id)


def _wait(text: str, longest: float) -> float:
    try:
        return min(parse_duration(text), longest)
    except ValueError as exc:
        raise InvalidArgument(str(exc), "wait") from None


@router.get("/runs", response_model=RunPageResponse, summary="List runs, newest first")
def list_runs(
    request: Request,
    caller: Annotated[Caller, Depends(requires(Scope.READ))],
    workflow: Annotated[str | None, Query(max_length=200)] = None,
    status: RunStatus | None = None,
    trigger: Trigger | None = None,
    actor: Annotated[
        str | None, Query(max_length=300, description="Only runs started by exactly this actor (`token:svc`).")
    ] = None,
    since: Annotated[
        str | None, Query(description="Runs created at or after: an ISO-8601 time, or a duration ago (1h).")
    ] = None,
    until: Annotated[
        str | None, Query(description="Runs created before: an ISO-8601 time, or a duration ago (1h).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    next: Annotated[str | None, Query(max_length=300, description="The `next` of the previous page.")] = None,
) -> RunPageResponse:
    """Runs without their steps, filtered; follow ``next`` for more.

    The hot store's runs and, with ``ORCH_HISTORY_URL``, the history's, newest first in one list.
    A page may hold fewer than ``limit`` runs and still have a ``next``.
    """
    try:
        start, end = parse_window(since, until, time.time())
    except InvalidMoment as exc:
        raise InvalidArgument(str(exc), exc.name) from None
    query = RunQuery(workflow, status, trigger, start, limit, next, actor, end)
    page = services(request).runs.page(query)
    return RunPageResponse(runs=page.runs, next=page.next)


@router.post("/runs/{run_id}/cancel", response_model=RunRecord, summary="Cancel a run")
def cancel(run_id: RunId, request: Request, caller: Annotated[Caller, Depends(requires(Scope.ADMIN))]) -> RunRecord:
    """Queued steps are revoked, nothing new is dispatched; 409 if the run has already ended."""
    return services(request).coordinator.cancel(run_id, caller.actor)


@router.post("/runs/{run_id}/retry", response_model=RunRecord, summary="Retry a finished run")
def retry(run_id: RunId, request: Request, caller: Annotated[Caller, Depends(requires(Scope.ADMIN))]) -> RunRecord:
    """Failed, cancelled and unfinished steps run again; succeeded ones keep their outputs. 409 while it runs."""
    return services(request).coordinator.retry(run_id, caller.actor)


@router.get("/runs/{run_id}/events", response_model=EventPage, summary="A run's history")
def events(
    run_id: RunId,
    request: Request,
    caller: Annotated[Caller, Depends(requires(Scope.READ))],
    after: Annotated[str | None, Query(max_length=50, pattern=EVENT_ID, description="An event id.")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> EventPage:
    """Submitted, each step's state changes, cancelled and retried by whom; oldest first."""
    # The pattern keeps to ASCII digits (``\d`` takes any script's); Redis also refuses parts past 64 bits.
    if after is not None and any(int(part) >= 2**64 for part in after.split("-")):
        raise InvalidArgument(f"{after!r} is not an event id: each part is below 2**64", "after")
    found = services(request).runs.events(run_id, after or "-", limit)
    return EventPage(events=found, next=found[-1].id if len(found) == limit else None)
