"""The Celery app: ``celery -A workers.app worker`` (or ``orchestrator worker``).

:func:`create_app` is the factory; the module-level :data:`app` is built from the environment's
settings. With no broker configured, the app points at the embedded Redis that ``orchestrator
run`` / ``orchestrator dev`` start (see :mod:`orchestrator.dev.embedded`).
"""

from __future__ import annotations

import importlib
import logging

from celery import Celery

from config import Settings, get_settings
from orchestrator.definition.registry import WorkflowRegistry
from orchestrator.dev.embedded import embedded_urls
from orchestrator.engine.unit import STEP_TASK
from orchestrator.triggers.schedules import beat_entries
from workers import builtin, triggers
from workers.celery_config import celery_config
from workers.request import StepRequest
from workers.runner import StepTask, run_step
from workers.runtime import Runtime
from workers.signals import connect_signals
from workers.sweeper import Sweeper

log = logging.getLogger(__name__)


def create_app(
    settings: Settings | None = None, *, broker_url: str | None = None, store_url: str | None = None
) -> Celery:
    """Build the worker app.

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
    app = Celery("orchestrator", set_as_current=False)
    app.conf.update(celery_config(settings, broker, store))
    step_task = app.task(
        name=STEP_TASK,
        shared=False,
        bind=True,
        base=StepTask,
        acks_late=True,
        reject_on_worker_lost=True,
        ignore_result=True,
        Request=StepRequest,
    )(run_step)
    runtime = Runtime(app, settings, store)
    step_task.runtime = runtime
    builtin.register(app)
    for module in settings.task_modules:
        importlib.import_module(module)
    registry = WorkflowRegistry(settings.workflows_dir)
    triggers.register(app, runtime, registry)
    app.conf.beat_schedule = beat_entries(registry.workflows)
    app.steps["worker"].add(Sweeper)
    connect_signals(app, settings)
    return app


app = create_app()
