"""Tasks our workers run in the benchmarks (``ORCH_TASK_MODULES=bench.tasks``).

They do nothing but what their names say: the benchmarks measure the orchestration around them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from celery import shared_task
from celery.signals import worker_ready

from bench.processes import mark_ready


def task(name: str) -> Callable[[Callable[..., Any]], Any]:
    """``shared_task``, typed (Celery's decorators are not)."""
    decorator: Callable[[Callable[..., Any]], Any] = shared_task(name=name)
    return decorator


@task(name="bench.noop")
def noop(**_: Any) -> None:
    """A no-op step."""


@task(name="bench.items")
def items(count: int) -> list[int]:
    """The list a ``for_each`` step fans out over."""
    return list(range(count))


@task(name="bench.block")
def block(seconds: float = 600.0, **_: Any) -> None:
    """Sleep: the recovery benchmark kills the worker running it."""
    time.sleep(seconds)


def _ready(sender: Any = None, **_: Any) -> None:
    mark_ready(getattr(sender, "hostname", None))


worker_ready.connect(_ready)
