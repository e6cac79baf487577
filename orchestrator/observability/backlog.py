"""What Redis holds, read when Prometheus scrapes: queue depths, store size, dead letters, backlogs.

A custom collector rather than gauges someone keeps up to date: the numbers are Redis's own, so
every process that serves ``/metrics`` (the API, a worker's main process) reports the same, and
no writer can let them drift. One scrape is a pipeline round trip to the broker and one to the
store: ``LLEN`` of each list of each queue (kombu keeps one list per priority step), ``DBSIZE``,
``INFO memory``, ``ZCARD`` of the dead-letter indexes, and the retention and history queues
(``ZCOUNT`` of the runs due, ``ZCARD`` and the oldest entry of the runs waiting for the export). The
key layout is the store's business: the composition root hands in which lists make up each queue and
which keys (one of each per shard on a Redis Cluster) index the dead letters and the finished runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, cast

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis import Redis
from redis.cluster import RedisCluster

from orchestrator.observability import metrics

log = logging.getLogger(__name__)

QueueLists = Callable[[], Mapping[str, Sequence[str]]]
"""Queue name -> the Redis lists holding its messages; called at each scrape (queues may appear)."""


class BacklogCollector(Collector):
    """Collects :data:`~orchestrator.observability.metrics.QUEUE_DEPTH` and the store gauges from Redis.

    Args:
        broker: Redis holding the queues.
        queues: Which lists make up each queue.
        store: Redis holding run state (often the same server).
        dead_letter_indexes: The sorted sets indexing dead letters.
        expiring: The sorted sets of finished runs by when their retention ends.
        archiving: The sorted sets of finished runs waiting for the history, by when they ended.
    """

    def __init__(
        self,
        broker: Redis,
        queues: QueueLists,
        store: Redis,
        dead_letter_indexes: Sequence[str],
        expiring: Sequence[str],
        archiving: Sequence[str],
    ) -> None:
        self.broker = broker
        self.queues = queues
        self.store = store
        self.dead_letter_indexes = tuple(dead_letter_indexes)
        self.expiring = tuple(expiring)
        self.archiving = tuple(archiving)

    def describe(self) -> list[Metric]:
        """The families without reading Redis (registering the collector does no I/O)."""
        return list(_families())

    def collect(self) -> Iterator[Metric]:
        depth, keys, memory, letters, due, waiting, waited, up = _families()
        try:
            lists = {queue: tuple(names) for queue, names in self.queues().items()}
            pipe = self.broker.pipeline(transaction=False)
            for names in lists.values():
                for name in names:
                    pipe.llen(name)
            lengths = iter(pipe.execute())
            for queue, names in sorted(lists.items()):
                depth.add_metric([queue], sum(int(next(lengths)) for _ in names))
            size, used = self._server()
            now = time.time()
            pipe = self.store.pipeline(transaction=False)
            for index in self.dead_letter_indexes:
                pipe.zcard(index)
            for queue in self.expiring:
                pipe.zcount(queue, "-inf", now)
            for queue in self.archiving:
                pipe.zcard(queue)
                pipe.zrange(queue, 0, 0, withscores=True)
            found = iter(pipe.execute())
            held = sum(int(next(found)) for _ in self.dead_letter_indexes)
            overdue = sum(int(next(found)) for _ in self.expiring)
            backlog, ended = 0, []
            for _ in self.archiving:
                backlog += int(next(found))
                ended += [float(score) for _, score in next(found)]
            keys.add_metric([], size)
            letters.add_metric([], held)
            memory.add_metric([], used)
            due.add_metric([], overdue)
            waiting.add_metric([], backlog)
            waited.add_metric([], max(0.0, now - min(ended)) if ended else 0.0)
            up.add_metric([], 1)
        except Exception as exc:  # a scrape must answer, with what it could not read missing
            log.warning("could not read queue depths and store size from Redis: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        yield from (depth, keys, memory, letters, due, waiting, waited, up)

    def _server(self) -> tuple[int, float]:
        """``DBSIZE`` and ``used_memory`` of the store's server; of all its nodes on a cluster."""
        if isinstance(self.store, RedisCluster):  # every node is asked, outside any pipeline
            nodes = cast(dict[str, dict[str, Any]], self.store.info("memory", target_nodes=RedisCluster.ALL_NODES))
            return int(self.store.dbsize()), float(sum(node.get("used_memory", 0) for node in nodes.values()))
        pipe = self.store.pipeline(transaction=False)
        pipe.dbsize()
        pipe.info("memory")
        size, info = pipe.execute()
        return int(size), float(info.get("used_memory", 0))


def _families() -> tuple[GaugeMetricFamily, ...]:
    return (
        GaugeMetricFamily(
            metrics.QUEUE_DEPTH, "Messages waiting in a queue (all its priority lists).", labels=["queue"]
        ),
        GaugeMetricFamily(metrics.STORE_KEYS, "Keys in the run store's Redis database."),
        GaugeMetricFamily(metrics.STORE_MEMORY, "Bytes of memory the run store's Redis uses."),
        GaugeMetricFamily(metrics.DEAD_LETTERS_HELD, "Dead letters kept for replay or deletion."),
        GaugeMetricFamily(metrics.RETENTION_DUE, "Finished runs whose retention is over, not removed yet."),
        GaugeMetricFamily(metrics.HISTORY_BACKLOG, "Finished runs waiting to be written to the history."),
        GaugeMetricFamily(
            metrics.HISTORY_BACKLOG_AGE, "Seconds the oldest run waiting for the history has waited (0: none)."
        ),
        GaugeMetricFamily(metrics.BACKLOG_UP, "1 when the last read of the queue and store gauges worked."),
    )
