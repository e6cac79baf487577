"""A Celery worker in a thread of this process, for the embedded default and ``orchestrator dev``.

Uses the threads pool: steps run in parallel, but Celery's time limits are not enforced by this
pool (the README says so); everything else (acks, claims, retries, joins) is the production path.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from celery import Celery
from celery._state import _set_task_join_will_block

from orchestrator.errors import ConfigurationError


class InProcessWorker:
    """Start a worker consuming ``queues`` in a daemon thread; stop it warmly on exit.

    Args:
        app: The worker app.
        queues: Queues to consume (the steps' queues).
        concurrency: Pool threads.
    """

    def __init__(self, app: Celery, queues: Sequence[str], concurrency: int = 4, **options: Any) -> None:
        self.app = app
        self.ready = threading.Event()
        app.set_default()  # pool threads resolve the app through current_app
        self.worker = app.WorkController(
            pool="threads",
            concurrency=concurrency,
            queues=list(dict.fromkeys(queues)),
            without_mingle=True,
            without_gossip=True,
            without_heartbeat=True,
            loglevel="WARNING",
            ready_callback=lambda consumer: self.ready.set(),
            **options,
        )
        self.thread = threading.Thread(target=self.worker.start, name="orchestrator-worker", daemon=True)

    def start(self, timeout: float = 15.0) -> InProcessWorker:
        self.thread.start()
        if not self.ready.wait(timeout):
            raise ConfigurationError("the in-process worker did not start; is the broker reachable?")
        _set_task_join_will_block(False)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self.worker.stop(in_sighandler=False)
        self.thread.join(timeout)

    def __enter__(self) -> InProcessWorker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
