"""The JSON the UI's pages poll, under ``/ui/api``: runs, a run's state, timeline, events and steps.

Reads need a session (any scope); cancel and retry need the admin scope, the CSRF token and the
same origin (:func:`orchestrator.ui.routes.mutating`). What pages poll carries an ETag: a run's
state is versioned by :meth:`~orchestrator.store.runs.RedisRuns.version` (one cheap round trip),
so polling a run that did not change costs a 304 without reading its steps.
"""

from __future__ import annotations

import json
import time
from hashlib import sha256
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from orchestrator.api.runs import services
from orchestrator.definition.durations import parse_moment
from orchestrator.definition.references import render
from orchestrator.engine.context import RunContext
from orchestrator.engine.ports import RunQuery
from orchestrator.engine.records import RunStatus, Trigger
from orchestrator.errors import InvalidArgument, OrchestratorError
from orchestrator.plan.compiler import Plan
from orchestrator.ui.layout import as_json, attempt_bars, critical_path, layout
from orchestrator.ui.routes import Login, SecureRoute, logged_in, mutating

router = APIRouter(prefix="/ui/api", include_in_schema=False, route_class=SecureRoute)
OUTPUT_CAP = 64 * 1024
"""Bytes of a step's pretty-printed output the detail shows; the rest is cut, with a note."""
TIMELINE_EVENTS = 200_000
LAYOUTS: dict[str, dict[str, Any]] = {}
LAYOUT_CACHE = 64
Session = Annotated[Login, Depends(logged_in)]


def tagged(request: Request, payload: Any, tag: str | None = None) -> Response:
    """``payload`` as JSON with an ETag (its hash unless given); a 304 when the client has it already."""
    body = None
    if tag is None:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        tag = sha256(body).hexdigest()[:20]
    etag = f'"{tag}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache, private"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    if body is None:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(body, media_type="application/json", headers=headers)


def graph(plan: Plan) -> dict[str, Any]:
    """The plan's DAG laid out, with what the page shows of each step; computed once per plan."""
    if plan.plan_id not in LAYOUTS:
        if len(LAYOUTS) >= LAYOUT_CACHE:
            LAYOUTS.clear()
        needs = {name: step.needs for name, step in plan.steps.items()}
        drawn = as_json(layout(needs), needs)
        definition = plan.definition.steps
        drawn["steps"] = {
            name: {
                "task": step.task,
                "for_each": step.fan_out,
                "when": definition[name].when,
                "rule": step.trigger_rule.value,
                "needs": list(step.needs),
            }
            for name, step in plan.steps.items()
        }
        LAYOUTS[plan.plan_id] = drawn
    return LAYOUTS[plan.plan_id]


@router.get("/runs")
def runs(
    request: Request,
    session: Session,
    workflow: Annotated[str | None, Query(max_length=200)] = None,
    status: RunStatus | None = None,
    trigger: Trigger | None = None,
    since: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    next: Annotated[str | None, Query(max_length=300)] = None,
) -> Response:
    """A page of runs as ``GET /v1/runs`` gives it; polled, so a page that did not change is a 304."""
    try:
        moment = parse_moment(since, time.time()) if since else None
    except ValueError as exc:
        raise InvalidArgument(str(exc), "since") from None
    page = services(request).store.runs.page(RunQuery(workflow or None, status, trigger, moment, limit, next))
    return tagged(request, {"runs": [r.model_dump(mode="json") for r in page.runs], "next": page.next})


@router.get("/runs/{run_id}")
def run(run_id: str, request: Request, session: Session) -> Response:
    """What the run page draws once: the run, its DAG laid out, and where Flower is."""
    svc = services(request)
    plan, _ = svc.store.runs.plan_of(run_id)
    flower = request.app.state.settings.ui.flower_url
    return tagged(
        request,
        {
            "run": svc.store.runs.summary(run_id).model_dump(mode="json"),
            "graph": graph(plan),
            "flower_url": flower.rstrip("/") if flower and flower.startswith(("http://", "https://")) else None,
            "caller": {"name": session.caller.name, "scope": session.caller.scope.value},
        },
    )


@router.get("/runs/{run_id}/state")
def state(run_id: str, request: Request, session: Session) -> Response:
    """Each step's ``[status, attempts, items, items_done, started_at, finished_at]``, versioned for 304s."""
    runs_ = services(request).store.runs
    plan, _ = runs_.plan_of(run_id)
    version = runs_.version(run_id, [name for name, step in plan.steps.items() if step.fan_out])
    tag = sha256(version.encode()).hexdigest()[:20]
    if request.headers.get("if-none-match") == f'"{tag}"':
        return tagged(request, None, tag)
    meta = runs_.summary(run_id)
    steps = runs_.steps_without_outputs(run_id, list(plan.steps))
    payload = {
        "version": tag,
        "status": meta.status.value,
        "finished": meta.status.finished,
        "started_at": meta.started_at,
        "finished_at": meta.finished_at,
        "now": time.time(),
        "steps": {
            name: [s.status.value, s.attempts, s.items, s.items_done, s.started_at, s.finished_at]
            for name, s in steps.items()
        },
    }
    return tagged(request, payload, tag)


@router.get("/runs/{run_id}/timeline")
def timeline(run_id: str, request: Request, session: Session) -> Response:
    """One bar per attempt (queue wait and run time) and the critical path, from the run's history."""
    runs_ = services(request).store.runs
    plan, _ = runs_.plan_of(run_id)
    events = runs_.history(run_id, "-", TIMELINE_EVENTS)
    tag = sha256(f"{events[-1].id if events else '-'}:{len(events)}".encode()).hexdigest()[:20]
    if request.headers.get("if-none-match") == f'"{tag}"':
        return tagged(request, None, tag)
    bars = attempt_bars(events)
    ends: dict[str, float] = {}
    for bar in bars:
        if bar.ended is not None:
            ends[bar.step] = max(ends.get(bar.step, bar.ended), bar.ended)
    path = critical_path({name: step.needs for name, step in plan.steps.items()}, ends)
    payload = {
        "bars": [[b.step, b.attempt, b.round, b.queued, b.started, b.ended, b.status, b.worker] for b in bars],
        "critical": path,
        "now": time.time(),
        "truncated": len(events) >= TIMELINE_EVENTS,
    }
    return tagged(request, payload, tag)


@router.get("/runs/{run_id}/events")
def events(
    run_id: str,
    request: Request,
    session: Session,
    after: Annotated[str | None, Query(max_length=50, pattern=r"^[0-9]{1,20}-[0-9]{1,20}$")] = None,
    limit: Annotated[int, Query(ge=1, le=2000)] = 500,
) -> Response:
    """The run's history after an event id, oldest first (the page appends them)."""
    found = services(request).store.runs.history(run_id, after or "-", limit)
    return JSONResponse(
        {"events": [e.model_dump(mode="json", exclude_none=True) for e in found], "more": len(found) == limit}
    )


@router.get("/runs/{run_id}/steps/{name}")
def step(run_id: str, name: str, request: Request, session: Session) -> Response:
    """One step in full: its record, its output pretty-printed (capped) and its idempotency key."""
    runs_ = services(request).store.runs
    plan, _ = runs_.plan_of(run_id)
    if name not in plan.steps:
        raise InvalidArgument(f"run {run_id!r} has no step {name!r}", "name")
    record = runs_.step(run_id, name)
    text = "" if record.output is None else json.dumps(record.output, indent=2, ensure_ascii=False, default=str)
    size = len(text.encode())
    if size > OUTPUT_CAP:
        text = text.encode()[:OUTPUT_CAP].decode("utf-8", "ignore")
    body = record.model_dump(mode="json", exclude={"output"})
    body.update(
        name=name,
        task=plan.steps[name].task,
        output_text=text,
        output_bytes=size,
        output_truncated=size > OUTPUT_CAP,
        idempotency_key=_idempotency_key(plan, run_id, name, runs_),
    )
    return tagged(request, body)


def _idempotency_key(plan: Plan, run_id: str, name: str, runs_: Any) -> dict[str, str | None] | None:
    template = plan.definition.steps[name].idempotency_key
    if template is None:
        return None
    meta = runs_.summary(run_id)
    outputs = {n: runs_.step(run_id, n).output for n in plan.steps[name].needs}
    context = RunContext(
        run_id, (meta.logical_date or meta.created_at)[:10], meta.workflow, meta.params, outputs=outputs
    )
    try:
        rendered: str | None = str(render(template, context.resolve))
    except (OrchestratorError, LookupError, ValueError, TypeError):
        rendered = None  # an output it names is not there yet
    return {"template": template, "rendered": rendered}


@router.post("/runs/{run_id}/cancel")
def cancel(run_id: str, request: Request, session: Annotated[Login, Depends(mutating)]) -> Response:
    """Cancel as ``POST /v1/runs/{id}/cancel`` does, recorded as the session's token."""
    services(request).coordinator.cancel(run_id, session.caller.actor)
    return JSONResponse({"ok": True})


@router.post("/runs/{run_id}/retry")
def retry(run_id: str, request: Request, session: Annotated[Login, Depends(mutating)]) -> Response:
    """Retry as ``POST /v1/runs/{id}/retry`` does, recorded as the session's token."""
    services(request).coordinator.retry(run_id, session.caller.actor)
    return JSONResponse({"ok": True})


@router.get("/workflows/{name}/graph")
def workflow_graph(name: str, request: Request, session: Session) -> Response:
    """A workflow's DAG laid out, for its page."""
    workflow = services(request).registry().get(name)
    needs = {n: s.needs for n, s in workflow.steps.items()}
    drawn = as_json(layout(needs), needs)
    drawn["steps"] = {
        n: {"task": s.task, "for_each": s.for_each is not None, "when": s.when, "rule": s.trigger_rule.value,
            "needs": list(s.needs)}
        for n, s in workflow.steps.items()
    }  # fmt: skip
    return tagged(request, {"graph": drawn})
