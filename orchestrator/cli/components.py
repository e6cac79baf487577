"""``worker``, ``beat``, ``flower``, ``api`` and ``dev``: thin wrappers that start the components.

``worker``, ``beat`` and ``flower`` replace this process with the Celery/Flower command (extra
arguments pass through, e.g. ``orchestrator worker --pool threads -c 32``); ``celery -A
workers.app worker`` works the same. ``dev`` runs everything in one process on the embedded default.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Annotated

import typer
import uvicorn

from config import get_settings
from orchestrator.cli.console import err
from orchestrator.definition.registry import WorkflowRegistry
from orchestrator.dev.embedded import EmbeddedRedis
from orchestrator.dev.inprocess import InProcessWorker
from orchestrator.errors import ConfigurationError
from orchestrator.services import open_history, services

PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


def _exec_celery(args: list[str]) -> None:
    settings = get_settings()
    app_path = settings.worker_app
    command = [sys.executable, "-m", "celery", "-A", app_path, *args]
    if settings.embedded:
        # Start (or join) the embedded server; it outlives this process for the exec'd command.
        EmbeddedRedis(settings.embedded_dir).start()
    os.execv(sys.executable, command)


def worker(ctx: typer.Context) -> None:
    """Start a worker: `celery -A workers.app worker` with reliable defaults; extra args pass through."""
    _exec_celery(["worker", *ctx.args])


def beat(ctx: typer.Context) -> None:
    """Start celery beat with the schedules of the workflows in ORCH_WORKFLOWS_DIR."""
    _exec_celery(["beat", *ctx.args])


def flower(
    ctx: typer.Context,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default ORCH_FLOWER__PORT).")] = None,
    address: Annotated[str | None, typer.Option(help="Address to listen on (default ORCH_FLOWER__ADDRESS).")] = None,
) -> None:
    """Start Flower, with basic auth from ORCH_FLOWER_BASIC_AUTH (refused without it).

    Its state is kept across restarts (``--persistent`` with ``--db``, ORCH_FLOWER__PERSISTENT and
    ORCH_FLOWER__DB) and it keeps ORCH_FLOWER__MAX_TASKS tasks in memory. Its ``/metrics`` and
    ``/healthcheck`` answer without credentials (Flower's choice): keep it on the internal network.
    Workers send the task events it shows only with ``-E`` (or ORCH_WORKER__TASK_EVENTS=true).
    """
    settings = get_settings()
    auth = settings.flower_basic_auth
    if auth is None:
        raise ConfigurationError("set ORCH_FLOWER_BASIC_AUTH=user:password; Flower never runs unauthenticated")
    os.environ["FLOWER_BASIC_AUTH"] = auth.get_secret_value()  # not on the command line: ps would show it
    flower = settings.flower
    _exec_celery(
        [
            "flower",
            f"--port={port or flower.port}",
            f"--address={address or flower.address}",
            f"--persistent={flower.persistent}",
            f"--db={flower.db}",
            f"--max_tasks={flower.max_tasks}",
            *ctx.args,
        ]
    )


def api(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default ORCH_API__HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default ORCH_API__PORT).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Server processes.")] = 1,
) -> None:
    """Serve the HTTP API with uvicorn (OpenAPI at /openapi.json).

    With ORCH_HISTORY_URL set, the history's schema is checked (or upgraded) first, and the API
    exports finished runs to it in the background (ORCH_HISTORY__EXPORT_IN_API).
    """
    settings = get_settings()
    with open_history(settings) as history:  # refuse to start on a history it cannot use: say why now
        if history is not None:
            history.ensure_schema(settings.history.migrate)
    uvicorn.run(
        "orchestrator.api.app:factory",
        factory=True,
        host=host or settings.api.host,
        port=port or settings.api.port,
        workers=workers,
        proxy_headers=True,
        log_level="info",
    )


def dev(
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", help="Worker threads.")] = 4,
) -> None:
    """Run everything in one process on the embedded default: Redis, a worker and the sweeper."""
    settings = get_settings()
    with services(settings) as svc:
        registry = WorkflowRegistry(settings.workflows_dir)
        queues = {settings.defaults.queue}
        for workflow in registry.workflows.values():
            queues |= {s.policy.queue for s in svc.coordinator.compile(workflow).steps.values()}
        with InProcessWorker(svc.app, sorted(queues), concurrency=concurrency):
            where = svc.embedded.broker_url if svc.embedded else settings.broker_url
            err.print(
                f"dev: worker on {', '.join(sorted(queues))} via {where}; "
                f"{len(registry.workflows)} workflows registered; Ctrl-C stops"
            )
            try:
                while True:
                    time.sleep(1)
            except KeyboardInterrupt:
                err.print("dev: stopping")


def register(app: typer.Typer) -> None:
    app.command(context_settings=PASS_THROUGH)(worker)
    app.command(context_settings=PASS_THROUGH)(beat)
    app.command(context_settings=PASS_THROUGH)(flower)
    app.command()(api)
    app.command()(dev)
