"""Health and metrics: ``/healthz`` (the process answers), ``/readyz`` (Redis and the broker do), ``/metrics``."""

from __future__ import annotations

import anyio
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from orchestrator.api.runs import services
from orchestrator.api.schemas import Health

router = APIRouter()
READY_TIMEOUT = 2.0


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "Redis or the broker does not answer"}},
    summary="Readiness: Redis (the run store) and the broker answer",
)
async def readyz(request: Request) -> Response:
    svc = services(request)
    checks: dict[str, str] = {}
    for name, probe in (("store", lambda: svc.store.redis.ping()), ("broker", lambda: _broker(svc.app))):
        try:
            with anyio.fail_after(READY_TIMEOUT):
                await anyio.to_thread.run_sync(probe, abandon_on_cancel=True)
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"unreachable: {type(exc).__name__}"
    ok = all(value == "ok" for value in checks.values())
    body = Health(status="ok" if ok else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


def _broker(app: object) -> None:
    with app.connection_for_write() as connection:  # type: ignore[attr-defined]
        connection.ensure_connection(max_retries=1, timeout=READY_TIMEOUT)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
