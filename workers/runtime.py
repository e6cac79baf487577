"""Per-process wiring of a worker: store, coordinator, step runner and lease keeper, built on first use.

Nothing here runs at import time or when the app is created: the Redis client is made the first
time a task, the sweeper or the consumer needs it (redis-py reconnects after a prefork fork by
itself, and the lease keeper starts a thread per process id).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from functools import cached_property
from typing import Any

from billiard.common import terminate_handler_fired
from celery import Celery, current_task, signals
from celery.app.trace import task_has_custom
from celery.concurrency import get_implementation
from celery.concurrency.thread import TaskPool as ThreadTaskPool
from celery.exceptions import SoftTimeLimitExceeded, WorkerShutdown, WorkerTerminate

from config import Settings
from orchestrator.definition.models import is_reserved_task
from orchestrator.definition.registry import WorkflowRegistry
from orchestrator.engine.coordinator import Coordinator
from orchestrator.engine.observers import Observers
from orchestrator.engine.runner import StepRunner
from orchestrator.errors import ConfigurationError, StepTimeout, UnknownTask
from orchestrator.observability.events import LogObserver, dead_lettered
from orchestrator.observability.metrics import DEAD_LETTERS
from orchestrator.plan.policy import base_policy
from orchestrator.services import dispatcher_for
from orchestrator.store import RedisRunStore
from workers.celery_config import celery_config
from workers.leases import LeaseKeeper
from workers.sentry import observe as observe_sentry

log = logging.getLogger(__name__)


class CeleryTasks:
    """The step runner's :class:`~orchestrator.engine.runner.TaskCaller`: a registered task, called in process.

    Any registered task works (the project's own decorator or a plain ``@shared_task``), whatever
    its own options: the step's policy applies. Celery's soft time limit is the step's timeout;
    it surfaces here as :class:`~orchestrator.errors.StepTimeout`.
    """

    def __init__(self, app: Celery) -> None:
        self.app = app
        self._bodies: dict[str, Callable[..., Any]] = {}

    def __call__(self, task: str, args: dict[str, Any]) -> Any:
        body = self._bodies.get(task) or self._body(task)
        try:
            return body(**args)
        except SoftTimeLimitExceeded:
            limits = current_task.request.timelimit if current_task else None
            soft = limits[1] if limits and limits[1] else None
            raise StepTimeout(f"time limit of {soft:g}s exceeded" if soft else "time limit exceeded") from None

    def _body(self, task: str) -> Callable[..., Any]:
        """What to call for ``task``: the task itself (``Task.__call__``, which pushes a request
        holding the call's arguments, about 13 µs) when it is bound (``bind=True``, or a class with
        its own ``run``) or its class overrides ``__call__``; otherwise its ``run`` function, which
        has no request to read (``current_task`` in it is the step task). Kept by name: the
        registry does not change once tasks run."""
        user_task = self.app.tasks.get(task)
        if is_reserved_task(task):
            raise UnknownTask(f"task {task!r} is the orchestrator's or Celery's own; a step cannot run it")
        if user_task is None:
            worker = current_task.request.hostname if current_task else "this worker"
            raise UnknownTask(f"task {task!r} is not registered on {worker}; add its module to ORCH_TASK_MODULES")
        plain = not inspect.ismethod(user_task.run) and not task_has_custom(user_task, "__call__")
        body: Callable[..., Any] = user_task.run if plain else user_task
        self._bodies[task] = body
        return body


def is_shutdown(exc: BaseException) -> bool:
    """Whether ``exc`` stops the worker process rather than ending the step's attempt.

    Celery's warm and cold shutdowns, Ctrl-C, and the ``SystemExit`` billiard raises in a pool
    process when it is told to terminate (a cancelled task, a connection loss): the message is
    handed back. A task's own ``sys.exit()`` is none of these.
    """
    if isinstance(exc, WorkerShutdown | WorkerTerminate | KeyboardInterrupt | GeneratorExit):
        return True
    return isinstance(exc, SystemExit) and terminate_handler_fired()


class Runtime:
    """What the step task, the sweeper and the consumer share in one worker process.

    Args:
        app: The Celery app (used to publish and to find user tasks).
        settings: The settings the app was built from.
        store_url: The run store's Redis URL.
    """

    def __init__(self, app: Celery, settings: Settings, store_url: str) -> None:
        self.settings = settings
        self.store = RedisRunStore.connect(
            store_url,
            prefix=settings.key_prefix,
            shards=settings.store_shards,
            sentinel_master=settings.sentinel_master,
            submission_ttl=settings.submission_ttl,
            fixed_threads=getattr(app, "fixed_threads", False),  # each pool thread keeps a connection
        )
        self.keys = self.store.keys
        self.redis = self.store.redis
        self.dispatcher = dispatcher_for(app, store_url, self.keys)
        self.observers = Observers(LogObserver())
        """Told of every state change this process makes: logs, metrics and Sentry add theirs."""
        self.coordinator = Coordinator(
            self.store,
            self.dispatcher,
            base_policy=base_policy(settings.defaults),
            lease_seconds=settings.worker.lease,
            observers=self.observers,
            archive=settings.history_enabled,  # schedules' and sensors' runs join the history too
            retention=settings.run_retention,
        )
        self.leases = LeaseKeeper(self.store.leases, settings.worker.lease)
        observe_sentry(self.observers, settings, self.store.runs.get, app)  # with ORCH_SENTRY_DSN
        self.runner = StepRunner(
            self.store,
            self.coordinator,
            self.leases,
            CeleryTasks(app),
            lease_seconds=settings.worker.lease,
            key_ttl=settings.idempotency_ttl,
            is_shutdown=is_shutdown,
        )


class WorkerApp(Celery):  # type: ignore[misc]
    """A Celery app that carries the orchestrator's settings and builds its :class:`Runtime` on first use.

    Args:
        settings: The settings.
        broker_url: The broker actually used (the embedded one when none is configured).
        store_url: The run store's Redis URL.
    """

    fixed_threads = False
    """Whether this process's tasks run on a fixed set of threads (``--pool threads``): told by
    :func:`note_pool` as its worker starts, before the runtime is built."""

    def __init__(self, settings: Settings, broker_url: str, store_url: str) -> None:
        super().__init__("orchestrator", set_as_current=False)
        self.settings = settings
        self.store_url = store_url
        signals.worker_init.connect(note_pool, weak=False, dispatch_uid="orchestrator.runtime.note_pool")
        self.conf.update(celery_config(settings, broker_url, store_url))
        # Items on a queue that are not messages at all reach the dead-letter queue (workers.transport).
        self.conf.broker_transport_options = {**self.conf.broker_transport_options, "poison_handler": self.poison}

    @cached_property
    def runtime(self) -> Runtime:
        """Store, coordinator and step runner of this process (connected the first time)."""
        return Runtime(self, self.settings, self.store_url)

    def poison(self, raw: bytes, queue: str, reason: str) -> None:
        """Keep an item popped from ``queue`` that is not a message (not JSON, no envelope) as a dead letter."""
        letter = self.runtime.store.dead_letters.record(
            "undecodable", reason, body=raw, headers=None, queue=queue, content_type=None, content_encoding=None
        )
        DEAD_LETTERS.labels("undecodable").inc()
        dead_lettered(letter_id=letter.id, reason=letter.reason, queue=queue, task_id=None, error=reason)

    @cached_property
    def registry(self) -> WorkflowRegistry:
        """The workflows of ``ORCH_WORKFLOWS_DIR`` (read the first time)."""
        return WorkflowRegistry(self.settings.workflows_dir)


def note_pool(sender: Any = None, **_: Any) -> None:
    """``worker_init``: note on a worker app whether its worker's pool is a fixed set of threads.

    Celery's ``threads`` pool runs tasks on its concurrency's threads for the worker's life, so
    each may keep a connection for the store's scripts (:class:`~orchestrator.store.scripts.KeptConnection`);
    a prefork or solo pool runs them on the main thread, which keeps one anyway, and gevent's and
    eventlet's run each on a greenlet of its own, which must not.
    """
    app = getattr(sender, "app", None)
    if isinstance(app, WorkerApp):
        app.fixed_threads = issubclass(get_implementation(sender.pool_cls), ThreadTaskPool)


def runtime_of(app: Celery) -> Runtime:
    """The runtime of an app built by :func:`workers.app.create_app`.

    Raises:
        ConfigurationError: the app was built some other way.
    """
    if not isinstance(app, WorkerApp):
        raise ConfigurationError(f"{app!r} was not built by workers.app.create_app; it has no orchestrator runtime")
    return app.runtime
