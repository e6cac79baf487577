"""The composition root: settings, the embedded server, the Celery app, store, coordinator, connected.

The worker app is built by the factory the settings name (``ORCH_WORKER_FACTORY``, default
``workers.app:create_app``), as ``celery -A`` imports an app, so this package never imports the
worker package.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from celery import Celery
from celery.utils.imports import symbol_by_name

from config import REDIS_SCHEMES, Settings, get_settings, same_redis, url_scheme
from orchestrator.broker.dispatch import CeleryDispatcher
from orchestrator.definition.registry import WorkflowRegistry
from orchestrator.dev.embedded import EmbeddedRedis
from orchestrator.engine.coordinator import Coordinator
from orchestrator.engine.observers import Observers
from orchestrator.errors import ConfigurationError
from orchestrator.history import Exporter, RunCatalog
from orchestrator.observability.backlog import BacklogCollector
from orchestrator.observability.events import LogObserver
from orchestrator.plan.policy import base_policy
from orchestrator.store import Keys, RedisRunStore, redis_client
from orchestrator.store.keys import PRIORITY_STEPS

if TYPE_CHECKING:
    from orchestrator.history.postgres import History

log = logging.getLogger(__name__)


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
    history: History | None = None
    """The durable history (``ORCH_HISTORY_URL``), None when it is not configured."""
    _registry: WorkflowRegistry | None = None

    @property
    def runs(self) -> RunCatalog:
        """Runs to read: the hot store first, the history after retention removed them."""
        return RunCatalog(self.store.runs, self.store.archive, self.history.reader if self.history else None)

    def exporter(self) -> Exporter:
        """The exporter from the archive queue to the history.

        Raises:
            ConfigurationError: ``ORCH_HISTORY_URL`` is not set.
        """
        if self.history is None:
            raise ConfigurationError("set ORCH_HISTORY_URL=postgresql://USER:PASSWORD@HOST/DB to keep run history")
        options = self.settings.history
        return Exporter(
            self.store.archive, self.history.writer, batch_size=options.batch_size, lock_seconds=options.lock_seconds
        )

    def compile_registered(self) -> int:
        """Compile the plans of the registry's workflows now, as many as the coordinator keeps (the
        first in file order), so that a submit of one does not pay its compile (a 10,000-step
        workflow: 140-160 ms); the API does it as it starts (``ORCH_API__COMPILE_AT_START``). A
        workflow that fails to compile is logged and left to fail its own submits. Returns how
        many were compiled."""
        compiled = 0
        for workflow in list(self.registry().workflows.values())[: self.coordinator.plans.size]:
            try:
                self.coordinator.compile(workflow)
            except Exception:  # a bug in the compiler must not keep the API from serving the rest
                log.exception("could not compile workflow %s", workflow.workflow)
                continue
            compiled += 1
        return compiled

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

    shards = keys.all_shards
    return BacklogCollector(
        broker,
        lists,
        store.redis,
        [shard.dead_letter_index() for shard in shards],
        expiring=[shard.expiring() for shard in shards],
        archiving=[shard.archiving() for shard in shards],
    )


def shares_store(app: Celery, store_url: str, keys: Keys) -> bool:
    """Whether ``app``'s broker is the run store's Redis with our key layout: its queues are
    ``keys.queue_list(...)`` in the store's own database, so the store may push onto them.

    That is the broker URL naming the store's server and database, kombu's ``global_keyprefix``
    being our broker prefix, and its priority steps kombu's defaults (as :mod:`orchestrator.store.keys` assumes).
    """
    options = app.conf.broker_transport_options or {}
    return (
        same_redis(str(app.conf.broker_url or ""), store_url)
        and options.get("global_keyprefix") == keys.broker_prefix()
        and tuple(options.get("priority_steps", PRIORITY_STEPS)) == PRIORITY_STEPS
    )


def dispatcher_for(app: Celery, store_url: str, keys: Keys) -> CeleryDispatcher:
    """The dispatcher of ``app`` beside the run store at ``store_url``: when the broker is that store's
    Redis (:func:`shares_store`), the store pushes the step messages its scripts fire."""
    return CeleryDispatcher(app, shares_store=shares_store(app, store_url, keys))


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
        store = RedisRunStore.connect(
            store_url,
            prefix=settings.key_prefix,
            shards=settings.store_shards,
            sentinel_master=settings.sentinel_master,
            submission_ttl=settings.submission_ttl,
        )
        stack.callback(store.close)
        dispatcher = dispatcher_for(app, store_url, store.keys)
        observers = Observers(LogObserver())
        coordinator = Coordinator(
            store,
            dispatcher,
            base_policy=base_policy(settings.defaults),
            lease_seconds=settings.worker.lease,
            observers=observers,
            archive=settings.history_enabled,
            retention=settings.run_retention,
        )
        history = stack.enter_context(open_history(settings))
        yield Services(settings, app, store, dispatcher, coordinator, embedded, observers, history)


@contextlib.contextmanager
def open_history(settings: Settings) -> Iterator[History | None]:
    """The history database of ``ORCH_HISTORY_URL`` (None when unset), closed afterwards.

    Nothing connects until it is used; SQLAlchemy and psycopg are imported only when it is set.
    """
    if settings.history_url is None:
        yield None
        return
    from orchestrator.history.postgres import History

    history = History.open(settings.history_url.get_secret_value())
    try:
        yield history
    finally:
        history.close()
