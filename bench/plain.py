"""The plain Celery baseline: ``celery -A bench.plain worker``.

Same reliability settings as ours (``acks_late``, ``reject_on_worker_lost``, prefetch 1, JSON),
Celery's defaults for everything else (no task events, default visibility timeout unless
``BENCH_VISIBILITY_TIMEOUT`` is set). Configured from the environment:

- ``BENCH_BROKER_URL``: the broker (a database of the benchmark's private Redis);
- ``BENCH_BACKEND_URL``: the result backend (chords need one);
- ``BENCH_RECORD_URL``: where tasks record what the benchmarks read (counters, timestamps);
- ``BENCH_VISIBILITY_TIMEOUT``: seconds, for the recovery benchmark.

Timestamps are ``time.time()`` floats in Redis hashes. ``task_prerun`` records a task's start;
a task's end is recorded by its body as it returns, because Celery publishes the next task of a
chain *before* ``task_postrun`` (``celery/app/trace.py``), so a postrun time would make the
dispatch lag look negative. ``task_postrun`` is recorded as well, for reference.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_ready
from redis import Redis

from bench.processes import mark_ready

QUEUE = "plain"


def configure(target: Celery, visibility_timeout: float | None = None) -> None:
    """The baseline's settings: ours for reliability, Celery's defaults for the rest."""
    target.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=QUEUE,
        broker_connection_retry_on_startup=True,
        enable_utc=True,
    )
    if visibility_timeout is not None:
        target.conf.broker_transport_options = {"visibility_timeout": visibility_timeout}


def create_app(broker_url: str | None, backend_url: str | None, visibility_timeout: float | None = None) -> Celery:
    """A plain Celery app with the tasks below (they are shared tasks: every app gets them)."""
    created = Celery("plain", broker=broker_url, backend=backend_url, set_as_current=False)
    configure(created, visibility_timeout)
    return created


visibility = os.environ.get("BENCH_VISIBILITY_TIMEOUT")
app = create_app(
    os.environ.get("BENCH_BROKER_URL"), os.environ.get("BENCH_BACKEND_URL"), float(visibility) if visibility else None
)
"""The worker's app, from the environment."""


def task(name: str, **options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``app.task``, typed (Celery's decorators are not)."""
    decorator: Callable[[Callable[..., Any]], Any] = app.task(name=name, **options)
    return decorator


_record: Redis | None = None
_record_pid = 0


def record() -> Redis:
    """This process's client of the recording Redis (a new one after a fork)."""
    global _record, _record_pid
    if _record is None or _record_pid != os.getpid():
        _record = Redis.from_url(os.environ["BENCH_RECORD_URL"], decode_responses=True)
        _record_pid = os.getpid()
    return _record


@task(name="plain.noop", ignore_result=True)
def noop() -> None:
    """A no-op."""


@task(name="plain.result")
def result() -> None:
    """A no-op whose (None) result is stored: chord headers need results."""


@task(name="plain.count", ignore_result=True)
def count(key: str, total: int) -> None:
    """A no-op that counts itself; the last one records when the whole batch was done."""
    if record().incr(key) == total:
        record().set(f"{key}:done", repr(time.time()))


@task(name="plain.timed", ignore_result=True)
def timed(key: str, i: int) -> None:
    """A no-op that records when it ends (its start is recorded by ``task_prerun``)."""
    record().hset(f"{key}:end", str(i), repr(time.time()))


@task(name="plain.timed_stored")
def timed_stored(key: str, i: int) -> None:
    """:func:`timed` whose result is stored: a chord's header tasks need results."""
    record().hset(f"{key}:end", str(i), repr(time.time()))


@task(name="plain.block", ignore_result=True)
def block(key: str, i: int, seconds: float = 600.0) -> None:
    """Sleep: the recovery benchmark kills the worker running it."""
    time.sleep(seconds)


def _started(task_id: str = "", task: Any = None, kwargs: dict[str, Any] | None = None, **_: Any) -> None:
    now = time.time()
    kwargs = kwargs or {}
    if "key" in kwargs and "i" in kwargs:
        pipe = record().pipeline(transaction=False)
        pipe.hset(f"{kwargs['key']}:start", str(kwargs["i"]), repr(now))
        pipe.hset(f"{kwargs['key']}:host", str(kwargs["i"]), str(task.request.hostname if task else ""))
        pipe.execute()


def _finished(task_id: str = "", kwargs: dict[str, Any] | None = None, **_: Any) -> None:
    now = time.time()
    kwargs = kwargs or {}
    if "key" in kwargs and "i" in kwargs:
        record().hset(f"{kwargs['key']}:postrun", str(kwargs["i"]), repr(now))


def _ready(sender: Any = None, **_: Any) -> None:
    mark_ready(getattr(sender, "hostname", None))


task_prerun.connect(_started)
task_postrun.connect(_finished)
worker_ready.connect(_ready)
