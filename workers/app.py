"""The Celery app of the workers: ``celery -A workers.app worker`` (or ``orchestrator worker``).

:func:`create_app` is the factory; the module-level :data:`app` is what ``celery -A workers.app``
finds. Creating it is cheap and does no I/O: it reads the settings, configures Celery and
registers the tasks. Task modules (``ORCH_TASK_MODULES``) are imported by Celery when a worker
starts (``imports``), the run store is connected on first use (:attr:`~workers.runtime.WorkerApp.runtime`) and
the workflows of ``ORCH_WORKFLOWS_DIR`` are read when something asks for them (beat, a schedule
tick). With no broker configured, the app points at the embedded Redis that ``orchestrator run``
and ``orchestrator dev`` start (:mod:`orchestrator.dev.embedded`).
"""

from __future__ import annotations

from config import Settings, get_settings
from orchestrator.dev.embedded import embedded_urls
from workers import builtin, logs, metrics, sensors, sentry, triggers
from workers.runtime import WorkerApp
from workers.step import register_step_task
from workers.sweeper import Sweeper
from workers.timers import TimerCompactor


def create_app(
    settings: Settings | None = None, *, broker_url: str | None = None, store_url: str | None = None
) -> WorkerApp:
    """Build the worker app (no I/O).

    Args:
        settings: Defaults to :func:`config.get_settings`.
        broker_url: Overrides the settings' broker (the embedded server passes its socket).
        store_url: Overrides the run store URL.
    """
    settings = settings or get_settings()
    if broker_url is None and settings.broker_url is None:
        broker_url, embedded_store = embedded_urls(settings.embedded_dir)
        store_url = store_url or embedded_store
    broker = broker_url or str(settings.broker_url)
    store = store_url or settings.resolved_store_url or broker
    app = WorkerApp(settings, broker, store)
    logs.setup(app)
    sentry.setup(app)
    register_step_task(app)
    builtin.register(app)
    triggers.register(app)
    sensors.register(app)
    app.steps["worker"].add(Sweeper)
    app.steps["worker"].add(TimerCompactor)  # bounds the main process: workers/timers.py
    metrics.setup(app)
    return app


app = create_app()
