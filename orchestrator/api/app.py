"""The API application: routes, the one error shape, limits, metrics, server timing, and its connections.

:func:`create_api` builds the FastAPI app; its lifespan connects the store and the broker
(:func:`orchestrator.services.services`) when the server starts and closes them when it stops.
``orchestrator api`` serves :func:`factory` with uvicorn.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
from fastapi import FastAPI, Request, Response
from prometheus_client import REGISTRY
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config import Settings, get_settings
from orchestrator.api import health, hooks, problems, runs, workflows
from orchestrator.history import Background
from orchestrator.observability.logs import configure_logging
from orchestrator.observability.metrics import API_LATENCY, API_REQUESTS
from orchestrator.observability.recorder import MetricsRecorder
from orchestrator.observability.sentry import init_sentry, install
from orchestrator.services import backlog, services, workflow_queues
from orchestrator.ui import router as ui_router
from orchestrator.ui import takes_form

JSON_TYPES = ("application/json",)

log = logging.getLogger(__name__)


class _TooLarge(Exception):  # noqa: N818 - caught right above where it is raised
    """A body went past the limit while it was read."""


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with a 413, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            response = problems.error_response(413, "BodyTooLarge", self._message())
            await response(scope, receive, send)
            return
        seen = 0
        started = False

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise _TooLarge()
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, sending)
        except _TooLarge:
            if started:
                raise
            await problems.error_response(413, "BodyTooLarge", self._message())(scope, receive, send)

    def _message(self) -> str:
        return f"the body is larger than {self.max_bytes} bytes (ORCH_API__MAX_BODY_BYTES)"


class ServerTiming:
    """Add ``Server-Timing: app;dur=<ms>`` to every HTTP answer: the milliseconds from the request's
    arrival at the app to the start of its answer (every middleware, the route and its Redis calls;
    not the network, nor uvicorn's parsing). Browsers' developer tools show it; ``bench/submit.py``
    reads it. A long-poll's wait is part of it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed = (time.perf_counter() - started) * 1000
                message.setdefault("headers", [])
                MutableHeaders(scope=message).append("Server-Timing", f"app;dur={elapsed:.3f}")
            await send(message)

        await self.app(scope, receive, timed)


def create_api(settings: Settings | None = None, *, own_process: bool = False) -> FastAPI:
    """The API app for these settings (by default the environment's).

    Args:
        settings: Defaults to the environment's.
        own_process: The app is what its process serves (:func:`factory`): once started, the
            process's heap is frozen (:func:`freeze_heap`). An app mounted
            in another process (a test, another ASGI app) leaves that process's collector alone.
    """
    settings = settings or get_settings()
    init_sentry(settings, "api")  # before the app is built: the Starlette integration patches it

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with services(settings) as svc:
            app.state.services = svc
            if settings.api.compile_at_start:
                started = time.perf_counter()
                compiled = svc.compile_registered()
                log.info("compiled %d workflows in %.0f ms", compiled, (time.perf_counter() - started) * 1000)
            install(svc.observers, settings, svc.coordinator.get, lambda name: svc.registry().get(name))
            svc.observers.add(MetricsRecorder())
            broker = str(svc.app.conf.broker_url)
            collector = backlog(settings, svc.store, broker, lambda: workflow_queues(svc.registry()))
            REGISTRY.register(collector)  # on /metrics beside the API's own metrics
            exporter = None
            if svc.history is not None and settings.history.export_in_api:
                exporter = Background(svc.exporter(), settings.history.poll_interval).start()
            if own_process:
                freeze_heap()
            try:
                yield
            finally:
                if exporter is not None:
                    await anyio.to_thread.run_sync(exporter.stop)
                REGISTRY.unregister(collector)

    app = FastAPI(
        title="celery-orchestrator",
        version="1",
        summary="Submit and follow workflow runs; signed webhooks start them too.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    problems.install(app)
    app.include_router(runs.router, tags=["runs"])
    app.include_router(workflows.router, tags=["workflows"])
    app.include_router(hooks.router, tags=["webhooks"])
    app.include_router(health.router, tags=["health"])
    app.include_router(ui_router)  # the web UI under /ui, left out of the OpenAPI schema

    @app.middleware("http")
    async def json_bodies_and_metrics(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Any:
        started = time.perf_counter()
        # Read here, before FastAPI does: a body over the limit is a 413 (BodyLimit), not a parse error.
        if (
            request.method in ("POST", "PUT", "PATCH")
            and await request.body()
            and not _is_json(request)
            and not (takes_form(request.url.path) and _is_form(request))
        ):
            response: Response = problems.error_response(
                415, "UnsupportedMediaType", "send the body as JSON, with Content-Type: application/json"
            )
        else:
            response = await call_next(request)
        route = getattr(request.scope.get("route"), "path", "unmatched")
        API_REQUESTS.labels(route, request.method, str(response.status_code)).inc()
        API_LATENCY.labels(route).observe(time.perf_counter() - started)
        return response

    app.add_middleware(BodyLimit, max_bytes=settings.api.max_body_bytes)
    app.add_middleware(ServerTiming)  # added last, so outermost: it times the other middleware too
    return app


def _is_json(request: Request) -> bool:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind in JSON_TYPES or kind.endswith("+json")


def _is_form(request: Request) -> bool:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind == "application/x-www-form-urlencoded"


def freeze_heap() -> None:
    """Take what the server process holds once started out of the cyclic garbage collector's reach
    (``gc.freeze``): its modules, app and connections, about 120,000 objects, and the plans of
    its directory's workflows, compiled just before (``Services.compile_registered``). A full
    collection scans every object the collector tracks, and what starts one is whatever a request
    keeps alive at once (a run of 10,000 roots builds 10,000 messages, which starts one about
    every other submit), so each would walk all of startup's objects to find nothing: 80-127 ms
    each on the benchmark machine, 31-43 ms with startup frozen but the plan compiled after. A
    wide submit spent 39 ms in full collections on average with nothing frozen, 17-28 ms with
    startup frozen, 0.4 ms with its plan frozen too (``docs/benchmarks.md``). Frozen objects are
    never collected: startup's garbage is collected first. Called once, by the lifespan of the
    app that is its process's own."""
    gc.collect()
    gc.freeze()


def factory() -> FastAPI:
    """What ``uvicorn --factory orchestrator.api.app:factory`` serves: the API for the environment's settings."""
    settings = get_settings()
    configure_logging(settings, "api")  # after uvicorn's own logging config: its loggers write through ours
    return create_api(settings, own_process=True)
