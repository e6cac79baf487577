"""celery-director's worker app for the peer benchmark, with our reliability settings.

Run in celery-director's own virtualenv (it pins its own Celery)::

    DIRECTOR_HOME=... /tmp/director-venv/bin/python -m celery -A bench.director_app:cel worker

celery-director leaves Celery's defaults (acks early, prefetch 4); for a like-for-like comparison
its worker gets what ours and plain Celery use: ``acks_late``, ``reject_on_worker_lost``,
prefetch 1, JSON. Its own behaviour (a database row per task, written before and after each
task; a 0.5 s sleep in its closing task) is unchanged.
"""

from __future__ import annotations

from typing import Any

from celery.signals import worker_ready
from director._auto import cel

from bench.processes import mark_ready

cel.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
)


def _ready(sender: Any = None, **_: Any) -> None:
    mark_ready(getattr(sender, "hostname", None))


worker_ready.connect(_ready)
