"""The systems under test, wired to a benchmark's private Redis: ours and plain Celery.

:class:`Ours` is what ``tests/integration/conftest.py`` builds: the worker app from our settings, a
run store and a coordinator in this process, workers started as ``celery -A workers.app worker``
with the ``ORCH_*`` environment. :class:`Plain` is ``bench.plain`` on another database of the same
server. Both use prefork pools of the same size.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from celery import Celery
from redis import Redis

from bench.processes import Processes, Worker
from config import Settings
from orchestrator.definition.loader import build_workflow
from orchestrator.definition.models import Workflow
from orchestrator.engine.coordinator import Coordinator
from orchestrator.engine.records import RunRecord
from orchestrator.plan.policy import base_policy
from orchestrator.services import dispatcher_for
from orchestrator.store import RedisRunStore

OURS_DB = 0
PLAIN_DB = 1  # broker and recorded timestamps
PLAIN_BACKEND_DB = 2


def timestamp(iso: str | None) -> float:
    """Epoch seconds of a run record's ISO-8601 timestamp."""
    if iso is None:
        raise ValueError("missing timestamp")
    return datetime.fromisoformat(iso).timestamp()


class Ours:
    """Our system on ``processes``' Redis (database 0, its own key prefix).

    Args:
        processes: Owns the Redis server and the workers.
        prefix: ``ORCH_KEY_PREFIX``.
        env: Extra worker environment (e.g. ``ORCH_WORKER__LEASE``).
        store_url: The run store, when it is not the broker's database (another database, a
            Redis Cluster: ``bench.cluster``).
    """

    def __init__(
        self,
        processes: Processes,
        prefix: str = "bench",
        env: Mapping[str, str] | None = None,
        *,
        store_url: str | None = None,
    ) -> None:
        self.processes = processes
        self.url = processes.redis.url(OURS_DB)
        self.store_url = store_url or self.url
        self.prefix = prefix
        self.extra_env = dict(env or {})
        self.settings = Settings(
            broker_url=self.url,
            store_url=self.store_url,
            key_prefix=prefix,
            task_modules=["bench.tasks"],
        )
        from workers.app import create_app  # importing builds a module-level app: keep it out of import time

        self.app: Celery = create_app(self.settings)
        self.store = RedisRunStore.connect(self.store_url, prefix=prefix, shards=self.settings.store_shards)
        self.redis: Redis = self.store.redis
        self.broker: Redis = processes.redis.client(OURS_DB)
        self.coordinator = Coordinator(
            self.store,
            dispatcher_for(self.app, self.store_url, self.store.keys),  # as orchestrator.services wires it
            base_policy=base_policy(self.settings.defaults),
            lease_seconds=self.settings.worker.lease,
        )

    def env(self) -> dict[str, str]:
        return {
            "ORCH_BROKER_URL": self.url,
            "ORCH_STORE_URL": self.store_url,
            "ORCH_KEY_PREFIX": self.prefix,
            "ORCH_TASK_MODULES": "bench.tasks",
            **self.extra_env,
        }

    def worker(
        self,
        name: str,
        concurrency: int,
        *,
        pool: str = "prefork",
        wait: bool = True,
        loglevel: str = "WARNING",
        wrapper: Sequence[str] = (),
    ) -> Worker:
        return self.processes.worker(
            name,
            "workers.app",
            self.env(),
            concurrency=concurrency,
            pool=pool,
            wait=wait,
            loglevel=loglevel,
            wrapper=wrapper,
        )

    def workflow(self, data: Mapping[str, Any]) -> Workflow:
        return build_workflow(dict(data))

    def run(self, data: Mapping[str, Any], timeout: float) -> tuple[float, RunRecord]:
        """Submit a workflow (validated before the clock starts) and wait for it to succeed.

        Returns:
            When it was submitted (epoch s) and its final record.

        Raises:
            RuntimeError: the run did not succeed.
        """
        workflow = self.workflow(data)
        started = time.time()
        run_id = self.coordinator.submit(workflow).run_id
        record = self.wait(run_id, timeout)
        if record.status.value != "succeeded":
            raise RuntimeError(f"run {run_id} {record.status.value}")
        return started, record

    def wait(self, run_id: str, timeout: float, poll: float = 0.02) -> RunRecord:
        """Wait for the run to finish (polling its status field only), then read the whole record."""
        deadline = time.monotonic() + timeout
        key = self.store.keys.run(run_id)
        while self.redis.hget(key, "status") not in ("succeeded", "failed", "cancelled"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} not finished after {timeout:g}s")
            time.sleep(poll)
        return self.store.runs.get(run_id)

    def drop(self, run_id: str, workflow: str) -> None:
        """Delete a run's keys (they share its hash tag) and its index entries, so that the next
        round starts from the same store (and Redis's memory figures from the same base)."""
        keys = self.store.keys
        pending: list[str] = []
        for key in self.redis.scan_iter(match=f"{keys.run(run_id)}*", count=10_000):
            pending.append(key)
            if len(pending) >= 5_000:
                self.redis.unlink(*pending)
                pending = []
        if pending:
            self.redis.unlink(*pending)
        self.redis.zrem(keys.shard(run_id).runs(), run_id)
        self.redis.zrem(keys.shard(run_id).runs_of(workflow), run_id)

    def purge(self) -> int:
        """Drop every message waiting in our default queue (all its priority lists); returns how many."""
        lists = self.store.keys.queue_lists(self.settings.defaults.queue)
        pipe = self.broker.pipeline(transaction=False)
        for name in lists:
            pipe.llen(name)
        pipe.delete(*lists)
        return sum(int(n) for n in pipe.execute()[:-1])

    def close(self) -> None:
        self.app.close()
        self.store.close()
        self.broker.close()


class Plain:
    """Plain Celery (``bench.plain``) on ``processes``' Redis."""

    def __init__(self, processes: Processes, visibility_timeout: float | None = None) -> None:
        self.processes = processes
        self.broker_url = processes.redis.url(PLAIN_DB)
        self.backend_url = processes.redis.url(PLAIN_BACKEND_DB)
        self.visibility_timeout = visibility_timeout
        from bench import plain

        # An app of this run's own: a module-level one would keep pools on an earlier server.
        self.app: Celery = plain.create_app(self.broker_url, self.backend_url, visibility_timeout)
        self.app.set_current()  # canvas falls back on the current app
        os.environ["BENCH_RECORD_URL"] = self.broker_url
        self.redis: Redis = processes.redis.client(PLAIN_DB)

    def env(self) -> dict[str, str]:
        env = {
            "BENCH_BROKER_URL": self.broker_url,
            "BENCH_BACKEND_URL": self.backend_url,
            "BENCH_RECORD_URL": self.broker_url,
        }
        if self.visibility_timeout is not None:
            env["BENCH_VISIBILITY_TIMEOUT"] = repr(self.visibility_timeout)
        return env

    def worker(self, name: str, concurrency: int, *, pool: str = "prefork", wait: bool = True) -> Worker:
        return self.processes.worker(
            name, "bench.plain", self.env(), concurrency=concurrency, pool=pool, wait=wait, extra=["-Q", "plain"]
        )

    def task(self, name: str) -> Any:
        """A task of ``bench.plain`` on this app (for signatures and ``apply_async``)."""
        return self.app.tasks[name]

    def purge(self) -> int:
        """Drop every message waiting in the ``plain`` queue (all its priority lists); returns how many."""
        from bench.plain import QUEUE

        lists = [QUEUE + sep for sep in ("", *(f"\x06\x16{step}" for step in (3, 6, 9)))]
        pipe = self.redis.pipeline(transaction=False)
        for name in lists:
            pipe.llen(name)
        pipe.delete(*lists)
        return sum(int(n) for n in pipe.execute()[:-1])

    def close(self) -> None:
        """Collect the canvas results still subscribed to the backend while Redis is up; close pools."""
        gc.collect()
        consumer = getattr(self.app.backend, "result_consumer", None)
        if consumer is not None:  # results collected at exit would unsubscribe from a dead server
            consumer.stop()
            consumer.subscribed_to.clear()
        self.app.close()

    def times(self, key: str, kind: str) -> dict[int, float]:
        """Recorded ``start`` / ``end`` / ``postrun`` times of the tasks under ``key``, by index."""
        raw = self.redis.hgetall(f"{key}:{kind}")
        return {int(i): float(t) for i, t in raw.items()}

    def wait_count(self, key: str, total: int, timeout: float, poll: float = 0.02) -> float:
        """Wait until ``total`` ``plain.count`` tasks under ``key`` ran; returns when the last one did."""
        deadline = time.monotonic() + timeout
        while (done := self.redis.get(f"{key}:done")) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.redis.get(key)!r} of {total} tasks done after {timeout:g}s")
            time.sleep(poll)
        return float(done)

    def wait_times(self, key: str, kind: str, total: int, timeout: float, poll: float = 0.02) -> dict[int, float]:
        deadline = time.monotonic() + timeout
        while self.redis.hlen(f"{key}:{kind}") < total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.redis.hlen(f'{key}:{kind}')} of {total} {kind} times after {timeout:g}s")
            time.sleep(poll)
        return self.times(key, kind)


def start(processes: Processes, concurrency: int) -> tuple[Ours, Plain]:
    """Our system and plain Celery, one worker node each (same pool and concurrency), both ready."""
    ours, plain = Ours(processes), Plain(processes)
    ours.worker("ours", concurrency, wait=False)
    plain.worker("plain", concurrency, wait=False)
    for worker in processes.workers:
        worker.wait_ready()
    return ours, plain


def add_common_arguments(parser: argparse.ArgumentParser, rounds: int = 3) -> None:
    """``--rounds``, ``--concurrency`` and ``--keep``, which every side-by-side benchmark takes."""
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--concurrency", type=int, default=2, help="prefork processes per worker node")
    parser.add_argument("--keep", action="store_true", help="keep worker logs")
