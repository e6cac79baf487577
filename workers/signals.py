"""Every Celery signal handler of the worker, connected in one place, each isolated.

A failing handler is logged, never raised: monitoring must not break task execution.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from celery import Celery

from config import Settings

log = logging.getLogger(__name__)


def isolated(handler: Callable[..., None]) -> Callable[..., None]:
    """Wrap a signal handler so an exception in it is logged and swallowed."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            handler(*args, **kwargs)
        except Exception:
            log.exception("signal handler %s failed", handler.__name__)

    return wrapper


def connect_signals(app: Celery, settings: Settings) -> None:
    """Connect the worker's signal handlers (monitoring hooks are added here as they come)."""
    del app, settings
