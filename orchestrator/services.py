"""The composition root: settings, the embedded server, the Celery app, store, coordinator, connected.

The worker app is built by the factory the settings name (``ORCH_WORKER_FACTORY``, default
``workers.app:create_app``), as ``celery -A`` imports an app, so this package never imports the
worker package.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

from celery import Celery
from celery.utils.imports import symbol_by_name

from config import Settings, get_settings
from orchestrator.broker.dispatch import CeleryDispatcher
from orchestrator.definition.registry import WorkflowRegistry
from orchestrator.dev.embedded import EmbeddedRedis
from orchestrator.engine.coordinator import Coordinator
from orchestrator.engine.observers import Observers
from orchestrator.errors import ConfigurationError
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
        observers = Observers()
        coordinator = Coordinator(
            store,
            dispatcher,
            base_policy=base_policy(settings.defaults),
            lease_seconds=settings.worker.lease,
            observers=observers,
        )
        yield Services(settings, app, store, dispatcher, coordinator, embedded, observers)
