"""The composition root: settings, the embedded server, the Celery app, store, coordinator, connected.

The worker app is built by the factory the settings name (``ORCH_WORKER_FACTORY``, default
``workers.app:create_app``), as ``celery -A`` imports an app, so this package never imports the
worker package.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from celery import Celery
from celery.utils.imports import symbol_by_name

from config import REDIS_SCHEMES, Settings, get_settings, url_scheme
from orchestrator.broker.dispatch import CeleryDispatcher
from orchestrator.definition.registry import WorkflowRegistry
from orchestrator.dev.embedded import EmbeddedRedis
from orchestrator.engine.coordinator import Coordinator
from orchestrator.engine.observers import Observers
from orchestrator.errors import ConfigurationError
from orchestrator.observability.backlog import BacklogCollector
from orchestrator.observability.events import LogObserver
from orchestrator.plan.policy import base_policy
from orchestrator.store import Keys, RedisRunStore, redis_client


def load_app(settings: Settings, broker_url: str | None = None, store_url: str | None = None) -> Celery:
    """Build the worker app with the factory named by the settings (``ORCH_WORKER_FACTORY``).

    Raises:
        ConfigurationError: it cannot be imported or built (the message says why).
    """
    try:
        factory = symbol_by_name(settings.worker_factory)
        app = factory(settings, broker_url=broker_url, store_url=store_url)
    except Exception as exc:
        raise ConfigurationError(f"cannot build the worker app with {settings.worker_factory!r}: {exc}") from exc
    if not isinstance(app, Celery):
        raise ConfigurationError(f"{settings.worker_factory!r} did not return a Celery app")
    return app


_TASK_NAMES: dict[tuple[str, tuple[str, ...]], frozenset[str] | None] = {}


def registered_tasks(settings: Settings | None = None) -> frozenset[str] | None:
    """Task names of the worker app these settings build, with its task modules imported as a starting
    worker imports them (``ORCH_TASK_MODULES``), or None when it cannot be built here.

    Remembered per worker factory and task modules: importing them is the slow part of a command.
    """
    if os.environ.get("ORCH_SKIP_TASK_CHECK"):
        return None
    settings = settings or get_settings()
    key = (settings.worker_factory, tuple(settings.task_modules))
    if key not in _TASK_NAMES:
        try:
            app = load_app(settings)
            app.loader.import_default_modules()
        except Exception:
            _TASK_NAMES[key] = None
        else:
            _TASK_NAMES[key] = frozenset(name for name in app.tasks if not name.startswith("celery."))
            app.close()
    return _TASK_NAMES[key]


@dataclass
class Services:
    """Everything a command, the API or a client in direct mode needs, connected."""

    settings: Settings
    app: Celery
    store: RedisRunStore
    dispatcher: CeleryDispatcher
    coordinator: Coordinator
    embedded: EmbeddedRedis | None
    observers: Observers
    """Told of every state change this process makes (logs, metrics, Sentry add theirs)."""
    _registry: WorkflowRegistry | None = None

    def registry(self) -> WorkflowRegistry:
        """The workflows of ``ORCH_WORKFLOWS_DIR``, read again when a file there changed."""
        if self._registry is None:
            self._registry = WorkflowRegistry(self.settings.workflows_dir, registered_tasks(self.settings))
        self._registry = self._registry.refreshed()
        return self._registry


def backlog(
    settings: Settings, store: RedisRunStore, broker_url: str, queues: Callable[[], Iterable[str]]
) -> BacklogCollector:
    """The scrape-time collector of queue depths and store size for these settings.

    Args:
        settings: The settings (key prefix, sentinel master).
        store: The run store (its Redis client and keys).
        broker_url: The broker actually used; a broker that is not Redis has no queue depths here.
        queues: The queue names to report, asked at each scrape (the default queue is always one).
    """
    keys = store.keys
    if url_scheme(broker_url) not in REDIS_SCHEMES:
        broker = store.redis
        names: Callable[[], Iterable[str]] = lambda: ()  # noqa: E731 - RabbitMQ reports its own depths
    else:
        same = broker_url in (settings.resolved_store_url, None)
        broker = store.redis if same else redis_client(broker_url, sentinel_master=settings.sentinel_master)
        names = queues

    def lists() -> dict[str, tuple[str, ...]]:
        return {name: keys.queue_lists(name) for name in {settings.defaults.queue, *names()}}

    return BacklogCollector(broker, lists, store.redis, keys.dead_letter_index())


def workflow_queues(registry: WorkflowRegistry) -> set[str]:
    """The queues the registered workflows name (their defaults and their steps)."""
    names: set[str] = set()
    for workflow in registry.workflows.values():
        names |= {q for q in (workflow.defaults.queue, *(s.queue for s in workflow.steps.values())) if q}
    return names


@contextlib.contextmanager
def services(settings: Settings | None = None) -> Iterator[Services]:
    """Connect to the broker and store (starting the embedded Redis when none is configured)."""
    settings = settings or get_settings()
    with contextlib.ExitStack() as stack:
        embedded = stack.enter_context(EmbeddedRedis(settings.embedded_dir)) if settings.embedded else None
        store_url = embedded.store_url if embedded else settings.resolved_store_url
        assert store_url is not None
        app = load_app(settings, embedded.broker_url if embedded else None, store_url if embedded else None)
        stack.callback(app.close)
        client = redis_client(store_url, sentinel_master=settings.sentinel_master)
        stack.callback(client.close)
        store = RedisRunStore(client, Keys(settings.key_prefix))
        dispatcher = CeleryDispatcher(app)
        observers = Observers(LogObserver())
        coordinator = Coordinator(
            store,
            dispatcher,
            base_policy=base_policy(settings.defaults),
            lease_seconds=settings.worker.lease,
            observers=observers,
        )
        yield Services(settings, app, store, dispatcher, coordinator, embedded, observers)
