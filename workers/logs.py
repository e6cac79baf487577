"""The workers' logging: Celery's signals wired to :func:`orchestrator.observability.logs.configure_logging`.

- ``setup_logging``: ``celery worker`` and ``celery beat`` configure our formatter instead of
  installing Celery's handlers. The level is the command line's ``--loglevel`` when one was
  given, else ``ORCH_LOG__LEVEL`` (default INFO); a spawned pool child (no command line) reads
  the same through the environment. A task's ``print`` is redirected to the ``celery.redirected``
  logger as Celery would (``worker_redirect_stdouts``).
- ``celeryd_init``/``celeryd_after_setup``: with JSON lines, Celery's banner (plain text) is
  replaced by one ``worker.starting`` line; a console keeps the banner. The ``<name> ready.``
  line is Celery's own log line, in either format.
- ``worker_init``: a worker running in a thread of a CLI process (``orchestrator run --wait``
  on the embedded default, ``orchestrator dev``) logs the same way, at ``ORCH_LOG__LEVEL`` when
  that is set, else at the in-process worker's own level (warnings: the CLI's output stays as it was).
- ``task_prerun``/``task_postrun``: the step's context (run, workflow, step, item, attempt, task
  id, worker) is bound for the whole delivery, so Celery's task lines and a task's own
  ``logging`` calls carry it, in prefork children and pool threads alike.

Every handler is connected once per process and logs (never raises) when it fails.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import click
from celery import Celery, Task, signals
from celery.apps.worker import Worker
from celery.utils.log import LoggingProxy
from click.core import ParameterSource

from config import Settings
from orchestrator.engine.unit import STEP_TASK
from orchestrator.observability.logs import bind_step, clear_step, configure_logging, resolve_format
from workers.runtime import WorkerApp

log = logging.getLogger(__name__)


class _State:
    app: WorkerApp | None = None
    settings: Settings | None = None
    quieted: bool = False


_state = _State()


def setup(app: WorkerApp) -> None:
    """Log the way ``app``'s settings say in whatever Celery process it runs (the last app built wins)."""
    _state.app = app
    _state.settings = app.settings
    for signal, handler in _HANDLERS:
        signal.connect(handler, weak=False, dispatch_uid=f"orchestrator.logs.{handler.__name__}")


def _guarded(handler: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(handler)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except Exception:  # a logging hook must never stop a worker or fail a task
            log.exception("logging signal handler %s failed", handler.__name__)
            return None

    return guarded


def _command() -> tuple[str | None, bool]:
    """The running celery command's name and whether ``--loglevel`` was given on its command line."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return None, False
    source = ctx.get_parameter_source("loglevel")
    return ctx.info_name, source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT)


def on_setup_logging(loglevel: int | None = None, logfile: str | None = None, **_: Any) -> bool:
    settings = _state.settings
    if settings is None:
        return False
    _configure(settings, loglevel, logfile)
    return True


def _configure(settings: Settings, loglevel: int | str | None, logfile: str | None) -> None:
    command, explicit = _command()
    level: int | str = loglevel if explicit and loglevel else settings.log.level
    if command is not None:  # the main process: a spawned pool child reads the same level from here
        os.environ["ORCH_LOG__LEVEL"] = logging.getLevelName(level) if isinstance(level, int) else level
    # Pinned, as the real stream: stdout and stderr are redirected to loggers next (once).
    redirected = isinstance(sys.stderr, LoggingProxy)
    stream = sys.__stderr__ if redirected or sys.stderr is None else sys.stderr
    configure_logging(settings, command or "worker", level=level, stream=stream, logfile=logfile)
    app = _state.app
    if command == "worker" and app is not None and app.conf.worker_redirect_stdouts and not redirected:
        # What Celery does when it sets logging up itself: a task's print() becomes a log line.
        app.log.redirect_stdouts(app.conf.worker_redirect_stdouts_level)
    logging.captureWarnings(True)  # a warning is a log line too (Celery does the same)


def on_celeryd_init(sender: str, instance: Worker, options: dict[str, Any] | None = None, **_: Any) -> None:
    settings = _state.settings
    if settings is None or not isinstance(instance, Worker):
        return
    logfile = (options or {}).get("logfile")
    # Now, not only at setup_logging: the worker warns about its privileges (and more) before that.
    _configure(settings, (options or {}).get("loglevel"), logfile)
    if not logfile and resolve_format(settings) == "json" and not instance.quiet:
        instance.quiet = True  # the banner is plain text: worker.starting says it as one JSON line
        _state.quieted = True


def on_celeryd_after_setup(sender: str, instance: Worker, **_: Any) -> None:
    if not _state.quieted:
        return
    app = instance.app
    pool = getattr(instance.pool_cls, "__module__", str(instance.pool_cls)).rpartition(".")[2]
    log.info(
        "worker.starting",
        extra={
            "event_fields": {
                "worker": instance.hostname,
                "pool": pool,
                "concurrency": instance.concurrency,
                "queues": sorted(app.amqp.queues.consume_from or app.amqp.queues),
                "broker": app.connection_for_write().as_uri(),  # the password masked
                "tasks": sorted(name for name in app.tasks if not name.startswith("celery.")),
            }
        },
    )


def on_worker_init(sender: Any, **_: Any) -> None:
    """An in-process worker (no ``celery worker`` command set logging up): configure it for its CLI."""
    if isinstance(sender, Worker) or not isinstance(getattr(sender, "app", None), WorkerApp):
        return
    settings = sender.app.settings
    explicit = "level" in settings.log.model_fields_set
    configure_logging(settings, "cli", level=settings.log.level if explicit else sender.loglevel)


def on_task_prerun(sender: Task | None = None, task_id: str | None = None, kwargs: Any = None, **_: Any) -> None:
    if sender is None:
        return
    request = sender.request
    fields: dict[str, Any] = {"task_id": task_id, "task": sender.name, "worker": request.hostname}
    if sender.name == STEP_TASK and isinstance(kwargs, dict):
        fields.update(
            run_id=_typed(kwargs.get("run_id"), str),
            step=_typed(kwargs.get("step"), str),
            item=_typed(kwargs.get("item"), int),
            attempt=_typed(kwargs.get("attempt", 1), int),
            workflow=_workflow(sender.app, kwargs.get("plan_id")),
        )
    bind_step(**fields)


def on_task_postrun(**_: Any) -> None:
    clear_step()


def _typed(value: Any, kind: type) -> Any:
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


def _workflow(app: Celery, plan_id: Any) -> str | None:
    """The plan's workflow, from the runtime's plan cache (the step runner reads the same plan next)."""
    if not isinstance(app, WorkerApp) or not isinstance(plan_id, str):
        return None
    try:
        return app.runtime.store.runs.plan(plan_id).workflow
    except Exception:  # no such plan, or Redis away: the runner says so; the line just lacks the name
        return None


_HANDLERS: list[tuple[Any, Callable[..., Any]]] = [
    (signals.setup_logging, _guarded(on_setup_logging)),
    (signals.celeryd_init, _guarded(on_celeryd_init)),
    (signals.celeryd_after_setup, _guarded(on_celeryd_after_setup)),
    (signals.worker_init, _guarded(on_worker_init)),
    (signals.task_prerun, _guarded(on_task_prerun)),
    (signals.task_postrun, _guarded(on_task_postrun)),
]
