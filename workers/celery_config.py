"""The one function that maps our :class:`~config.Settings` to Celery's configuration keys."""

from __future__ import annotations

from typing import Any

from config import Settings, url_scheme
from config.urls import CLUSTER_SCHEMES, REDIS_SCHEMES
from orchestrator.store.keys import Keys


def celery_config(settings: Settings, broker_url: str, store_url: str) -> dict[str, Any]:
    """Celery settings with production defaults for reliability.

    Args:
        settings: Our settings.
        broker_url: The broker actually used (the embedded one when none is configured).
        store_url: The Redis holding run state; the default result backend too.

    Returns:
        Keys for ``app.conf.update``. Messages are JSON only: pickle is never accepted.
    """
    worker = settings.worker
    keys = Keys(settings.key_prefix)
    transport: dict[str, Any] = {"visibility_timeout": worker.visibility_timeout}
    backend_transport: dict[str, Any] = {"visibility_timeout": worker.visibility_timeout}
    if settings.sentinel_master:
        transport["master_name"] = settings.sentinel_master
        backend_transport["master_name"] = settings.sentinel_master
    if _transport(broker_url) is not None:
        # Every kombu key (queues, bindings, unacked bookkeeping) in our namespace, so several
        # deployments (or tests) can share one Redis. Queue "q" is the list keys.queue("q").
        transport["global_keyprefix"] = keys.broker_prefix()
    return {
        "broker_transport": _transport(broker_url),
        "broker_url": broker_url,
        "result_backend": settings.result_backend or _default_backend(broker_url, store_url),
        "task_serializer": "json",
        "result_serializer": "json",
        "event_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": worker.prefetch_multiplier,
        "worker_concurrency": worker.concurrency,
        "worker_pool": worker.pool,
        "worker_max_tasks_per_child": worker.max_tasks_per_child,
        "worker_max_memory_per_child": worker.max_memory_per_child,
        # A broker connection lost mid-step must not interrupt the step: Celery would terminate it
        # (its late ack cannot be sent) in the middle of its side effect. Claims drop the
        # redelivered copy once the step has ended, so letting it finish repeats nothing.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "broker_connection_retry_on_startup": True,
        "broker_connection_retry": True,
        "broker_connection_max_retries": None,
        "broker_transport_options": transport,
        "result_backend_transport_options": backend_transport,
        "result_expires": worker.result_expires,
        "task_default_queue": settings.defaults.queue,
        "task_create_missing_queues": True,
        "task_track_started": True,
        # Events only for those who watch them (Flower: ORCH_WORKER__TASK_EVENTS=true); `celery
        # worker -E` and `celery control enable_events` still turn them on at run time.
        "worker_send_task_events": worker.task_events,
        "task_send_sent_event": worker.task_events,
        "worker_consumer": "workers.consumer:DeadLetterConsumer",
        "beat_scheduler": "workers.beat:WorkflowScheduler",
        # The user's task modules, imported when a worker (or beat) starts, not when the app is built.
        "imports": list(settings.task_modules),
        "enable_utc": True,
        "timezone": "UTC",
    }


def _transport(broker_url: str) -> str | None:
    """Our subclass of kombu's Redis transport (see :mod:`workers.transport`), or None for the URL's own."""
    return _TRANSPORTS.get(url_scheme(broker_url))


_TRANSPORTS = {
    "redis": "workers.transport:Transport",
    "rediss": "workers.transport:Transport",
    "redis+socket": "workers.transport:Transport",
    "sentinel": "workers.transport:SentinelTransport",
}


def _default_backend(broker_url: str, store_url: str) -> str | None:
    """The store's Redis; with the store on a cluster (which Celery's backend cannot use), the broker's
    when it is Redis, else none (our tasks ignore their results: only ``AsyncResult`` users miss it)."""
    if url_scheme(store_url) not in CLUSTER_SCHEMES:
        return _celery_url(store_url)
    return _celery_url(broker_url) if url_scheme(broker_url) in REDIS_SCHEMES else None


def _celery_url(redis_url: str) -> str:
    """redis-py spells a unix socket ``unix://``; Celery's Redis backend spells it ``redis+socket://``."""
    return "redis+socket://" + redis_url.removeprefix("unix://") if redis_url.startswith("unix://") else redis_url
