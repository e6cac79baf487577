"""Sentry in the worker and beat processes: the signals that start the SDK, and the runtime's observer.

Sentry's advice for Celery is to initialise the SDK when the worker starts, not where tasks are
defined. With a prefork pool, that is twice: in the main process (``worker_init``, before the pool
forks, so the SDK's Celery patches are in place when the children build their task tracers) and
again in each pool child (``worker_process_init``), so every child has a transport thread of its
own. Beat starts it on ``beat_init``. Pool children flush queued events when they exit (the
Celery integration), the main process at exit (the SDK's atexit integration).

:func:`observe` adds :class:`~orchestrator.observability.sentry.SentryObserver` to a worker
process's :class:`~workers.runtime.Runtime`: final step failures, step tags, Crons check-ins.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import Celery, signals

from config import Settings
from orchestrator.engine.observers import Observers
from orchestrator.engine.records import RunSummary
from orchestrator.observability.sentry import Component, init_sentry, install

log = logging.getLogger(__name__)

_apps: list[Any] = []
"""The apps :func:`setup` was called with, newest last: the one a worker or beat process serves."""


def setup(app: Any) -> None:
    """Start Sentry in the processes that serve ``app``, a :class:`~workers.runtime.WorkerApp` (with a DSN)."""
    if app.settings.sentry_dsn is None:
        return
    _apps.append(app)
    del _apps[:-1]  # keep only the newest: tests build many apps in one process
    signals.worker_init.connect(_worker_init, weak=False, dispatch_uid="orchestrator.sentry.worker_init")
    signals.worker_process_init.connect(
        _worker_process_init, weak=False, dispatch_uid="orchestrator.sentry.worker_process_init"
    )
    signals.beat_init.connect(_beat_init, weak=False, dispatch_uid="orchestrator.sentry.beat_init")


def observe(observers: Observers, settings: Settings, runs: Callable[[str], RunSummary], app: Celery) -> None:
    """Add the Sentry observer to a worker runtime's ``observers`` (when ``ORCH_SENTRY_DSN`` is set).

    Args:
        observers: The runtime's observers.
        settings: Its settings.
        runs: Reads a run record.
        app: The :class:`~workers.runtime.WorkerApp` (its registry gives schedules' definitions).
    """

    def workflow(name: str) -> Any:
        return app.registry.get(name)  # read when first needed: a WorkerApp reads ORCH_WORKFLOWS_DIR once

    install(observers, settings, runs, workflow)


def _start(sender: Any, component: Component) -> None:
    """Start the SDK for the app the signal's sender serves; a failure is logged, never raised."""
    try:
        app = getattr(sender, "app", None)
        app = app if app is not None and hasattr(app, "settings") else (_apps[-1] if _apps else None)
        if app is not None:
            init_sentry(app.settings, component)
    except Exception:
        log.exception("could not start Sentry in this %s process", component)


def _worker_init(sender: Any = None, **_: Any) -> None:
    _start(sender, "worker")


def _worker_process_init(sender: Any = None, **_: Any) -> None:
    _start(None, "worker")  # the sender is the hostname


def _beat_init(sender: Any = None, **_: Any) -> None:
    _start(sender, "beat")
