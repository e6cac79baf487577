"""Structured logs: one formatter for every process (JSON lines or a console), and the step context.

:func:`configure_logging` puts one handler on the root logger whose formatter is structlog's
:class:`~structlog.stdlib.ProcessorFormatter`: the project's ``logging.getLogger(__name__)`` calls,
Celery's and uvicorn's loggers and a user's ``logging`` calls inside a task all come out the same
way, as do structlog loggers. Each line has ``timestamp`` (ISO-8601 UTC), ``level``, ``logger``,
``event`` and ``component``, plus whatever is bound in structlog's contextvars: while a step runs,
:func:`bind_step` binds :data:`STEP_FIELDS`, so every line it writes says which run and step it
belongs to. Secrets (``SecretStr``) are masked; params and outputs are never put on a line.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator, Mapping
from typing import Any, Literal, TextIO

import structlog
from pydantic import SecretBytes, SecretStr
from structlog.contextvars import bind_contextvars, clear_contextvars, merge_contextvars
from structlog.stdlib import ProcessorFormatter
from structlog.typing import EventDict, Processor, WrappedLogger

from config import Settings

STEP_FIELDS = ("run_id", "workflow", "step", "item", "attempt", "task_id", "worker")
"""What every line written while a step runs carries (``item`` only for a ``for_each`` item)."""
FIELDS_ATTRIBUTE = "event_fields"
"""The ``extra`` key under which a stdlib call passes structured fields (``extra={"event_fields": {...}}``)."""
MASK = "**********"
HEAD = ("timestamp", "level", "logger", "event")
"""Keys every line starts with, in this order."""
HANDED_OVER = ("uvicorn", "uvicorn.error", "uvicorn.access", "celery", "celery.task", "celery.redirected")
"""Loggers their frameworks give handlers of their own: emptied, so they write through the root's."""

Format = Literal["json", "console"]


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at each line (a CLI test runner swaps it per invocation)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:  # logging.StreamHandler.__init__ assigns it
        pass


_installed: list[logging.Handler] = []
"""The handler :func:`configure_logging` put on the root logger (at most one), replaced by a new call."""


def resolve_format(settings: Settings, stream: TextIO | None = None) -> Format:
    """``json`` or ``console``: the setting, or for ``auto`` console when ``stream`` (stderr) is a terminal."""
    chosen = settings.log.format
    if chosen != "auto":
        return chosen
    stream = stream if stream is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    return "console" if callable(isatty) and isatty() else "json"


def configure_logging(
    settings: Settings,
    component: str,
    *,
    level: int | str | None = None,
    stream: TextIO | None = None,
    logfile: str | None = None,
) -> Format:
    """Route every logger of this process through one structlog formatter (idempotent: a second call replaces it).

    Args:
        settings: ``settings.log`` gives the level and the format.
        component: Put on every line (``worker``, ``beat``, ``api``, ``cli``).
        level: Overrides ``settings.log.level`` (a worker's ``--loglevel``).
        stream: Where lines go; by default the current ``sys.stderr`` at each line.
        logfile: Append to this file instead (Celery's ``--logfile``); its lines are JSON unless the
            format is ``console``.

    Returns:
        The format chosen.
    """
    handler: logging.Handler
    if logfile:
        handler = logging.FileHandler(logfile, encoding="utf-8")
        chosen: Format = "console" if settings.log.format == "console" else "json"
    else:
        handler = logging.StreamHandler(stream) if stream is not None else _Stderr()
        chosen = resolve_format(settings, stream)
    target = getattr(handler, "stream", None)
    colors = chosen == "console" and target is not None and bool(target.isatty())
    handler.setFormatter(formatter(chosen, component, colors=colors))
    resolved = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if resolved is None:
        resolved = logging.getLevelName(settings.log.level)

    root = logging.getLogger()
    for old in _installed:
        root.removeHandler(old)
        old.close()
    _installed[:] = [handler]
    root.addHandler(handler)
    root.setLevel(resolved)
    for name in HANDED_OVER:
        framework = logging.getLogger(name)
        framework.handlers = []
        framework.propagate = True
    structlog.configure(
        processors=[*_native_chain(component), ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,  # a second configure (tests, the API's reload) takes effect
    )
    return chosen


def formatter(chosen: Format, component: str, *, colors: bool = False) -> ProcessorFormatter:
    """The formatter of :func:`configure_logging`, for a handler of one's own (tests capture lines with it)."""
    renderer: list[Processor] = (
        [structlog.processors.format_exc_info, _ordered, structlog.processors.JSONRenderer(default=repr)]
        if chosen == "json"
        else [_ordered, structlog.dev.ConsoleRenderer(colors=colors)]
    )
    return ProcessorFormatter(
        processors=[ProcessorFormatter.remove_processors_meta, *renderer],
        foreign_pre_chain=_foreign_chain(component),
        pass_foreign_args=True,
    )


# --- the step's context ------------------------------------------------------------------------


def bind_step(**fields: Any) -> None:
    """Start a delivery's context: clear what a previous one left, bind ``fields`` (None values are left out).

    Call :func:`clear_step` when the delivery ends (the worker's ``task_prerun``/``task_postrun`` do).
    """
    clear_contextvars()
    bind_contextvars(**{k: v for k, v in fields.items() if v is not None})


def clear_step() -> None:
    """End a delivery's context: nothing it bound reaches the next line."""
    clear_contextvars()


@contextlib.contextmanager
def step_context(**fields: Any) -> Iterator[None]:
    """:func:`bind_step` for the duration of a ``with`` block."""
    bind_step(**fields)
    try:
        yield
    finally:
        clear_step()


# --- processors --------------------------------------------------------------------------------


def _event_fields(logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
    """Fields a stdlib call passed in ``extra`` (they win over the bound context)."""
    record = event.get("_record")
    fields = getattr(record, FIELDS_ATTRIBUTE, None)
    if isinstance(fields, Mapping):
        for key, value in fields.items():
            event.setdefault(str(key), value)
    return event


def _celery_fields(logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
    """Celery's task lines pass the task as a mapping (``Task %(name)s[%(id)s] received``): keep its id and name.

    Other arguments of a foreign call were interpolated into ``event`` already and are dropped
    (never rendered a second time: a task's args or return value are not for the logs).
    """
    args = event.pop("positional_args", None)
    if isinstance(args, Mapping) and isinstance(args.get("id"), str):
        event.setdefault("task_id", args["id"])
        if isinstance(args.get("name"), str):
            event.setdefault("task", args["name"])
    return event


def _masked(logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
    """Secrets never reach a line, whoever bound them; None values say nothing and are left out."""
    for key, value in list(event.items()):
        if value is None:
            del event[key]
        elif isinstance(value, SecretStr | SecretBytes):
            event[key] = MASK
    return event


def _ordered(logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
    head = {key: event.pop(key) for key in HEAD if key in event}
    return {**head, **event}


def _component(component: str) -> Processor:
    def add(logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
        event.setdefault("component", component)
        return event

    return add


def _common(component: str) -> list[Processor]:
    return [
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _component(component),
        _masked,
    ]


def _foreign_chain(component: str) -> list[Processor]:
    """For stdlib records (ours, Celery's, uvicorn's, a task's)."""
    return [_event_fields, merge_contextvars, _celery_fields, *_common(component)]


def _native_chain(component: str) -> list[Processor]:
    """For structlog loggers."""
    return [merge_contextvars, structlog.stdlib.PositionalArgumentsFormatter(), *_common(component)]
