"""Worker metrics: prometheus-client's multiprocess mode, served by the worker's main process.

``orchestrator worker --metrics-port 9808`` (or ``ORCH_METRICS__WORKER_PORT``) turns it on. Prefork
pool processes each count their own steps, so every process writes its values to files in one
directory (``ORCH_METRICS__MULTIPROCESS_DIR``, or a temporary directory made for this worker node),
and the main process's HTTP server sums them at each scrape, beside the queue-depth and store
gauges it reads from Redis (:class:`~orchestrator.observability.backlog.BacklogCollector`).

The mode is chosen in the main process before the pool forks (the bootstep's ``__init__``): the
directory is emptied (counters of an earlier run of the node must not add up with this one's),
``PROMETHEUS_MULTIPROC_DIR`` is set for the children to inherit, and prometheus-client's value
class is switched, since it was chosen when the library was first imported, before the worker's
options were read. Every metric a worker records has labels, so none holds a value made before
the switch. A pool process that exits hands back its live-gauge files (``mark_process_dead``).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import click
from celery import Celery, bootsteps
from celery.signals import worker_process_shutdown
from prometheus_client import CollectorRegistry, multiprocess, start_http_server, values

from orchestrator.observability.recorder import MetricsRecorder
from orchestrator.services import backlog
from workers.runtime import runtime_of

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def setup(app: Celery) -> None:
    """Add ``--metrics-port`` to ``celery worker`` and the bootstep that serves the metrics."""
    app.user_options["worker"].add(
        click.Option(
            ["--metrics-port"],
            type=click.IntRange(1, 65535),
            default=None,
            help="Serve Prometheus metrics of this worker node on this port (default ORCH_METRICS__WORKER_PORT).",
        )
    )
    app.steps["worker"].add(MetricsServer)


class MetricsServer(bootsteps.StartStopStep):  # type: ignore[misc]
    """Serves ``/metrics`` of the whole worker node (main process and pool) from its main process."""

    def __init__(self, worker: Any, metrics_port: int | None = None, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        runtime = runtime_of(worker.app)
        settings = runtime.settings.metrics
        self.port = metrics_port or settings.worker_port
        self.address = settings.worker_address
        self.enabled = self.port is not None
        self.server: Any = None
        self.owned: Path | None = None
        if not self.enabled:
            return
        if settings.multiprocess_dir is not None:
            self.directory = Path(settings.multiprocess_dir)
            self.directory.mkdir(parents=True, exist_ok=True)
            for stale in self.directory.glob("*.db"):
                stale.unlink()
        else:
            name = "".join(c if c.isalnum() else "-" for c in str(worker.hostname))
            self.directory = self.owned = Path(tempfile.mkdtemp(prefix=f"orch-metrics-{name}-"))
        os.environ[MULTIPROC_ENV] = str(self.directory)
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]  # chosen at import; the env var is set only now
        runtime.observers.add(MetricsRecorder())
        worker_process_shutdown.connect(_process_dead, weak=False)

    def start(self, worker: Any) -> None:
        assert self.port is not None  # only an enabled step starts
        runtime = runtime_of(worker.app)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(self.directory))  # type: ignore[no-untyped-call]
        app = worker.app
        registry.register(
            backlog(runtime.settings, runtime.store, str(app.conf.broker_url), lambda: set(app.amqp.queues))
        )
        self.server, _ = start_http_server(self.port, addr=self.address, registry=registry)
        log.info("metrics of %s on http://%s:%s/metrics", worker.hostname, self.address, self.port)

    def stop(self, worker: Any) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def shutdown(self, worker: Any) -> None:
        self.stop(worker)
        if self.owned is not None:
            shutil.rmtree(self.owned, ignore_errors=True)
            self.owned = None


def _process_dead(pid: int | None = None, **_: Any) -> None:
    """``worker_process_shutdown``: a pool process leaves; its live gauges go with it."""
    try:
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
    except Exception:  # a signal handler never raises into Celery
        log.exception("could not hand back the metrics files of process %s", os.getpid())
