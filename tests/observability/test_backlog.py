"""The scrape-time gauges read from Redis: queues, store size, dead letters, retention and history backlogs."""

from __future__ import annotations

import time

from redis import Redis

from orchestrator.observability import metrics
from orchestrator.observability.backlog import BacklogCollector
from orchestrator.store.keys import Keys


def _gauges(collector: BacklogCollector) -> dict[str, float]:
    return {
        sample.name + (f"{{{sample.labels['queue']}}}" if sample.labels else ""): sample.value
        for family in collector.collect()
        for sample in family.samples
    }


def test_the_retention_and_history_backlogs_are_read_at_scrape_time(redis_client: Redis, key_prefix: str) -> None:
    keys = Keys(key_prefix)
    collector = BacklogCollector(
        redis_client,
        lambda: {"default": keys.queue_lists("default")},
        redis_client,
        [keys.dead_letter_index()],
        expiring=[keys.expiring()],
        archiving=[keys.archiving()],
    )
    empty = _gauges(collector)
    assert empty[metrics.RETENTION_DUE] == 0
    assert empty[metrics.HISTORY_BACKLOG] == 0 and empty[metrics.HISTORY_BACKLOG_AGE] == 0
    assert empty[metrics.BACKLOG_UP] == 1

    now = time.time()
    redis_client.zadd(keys.expiring(), {"due-1": now - 60, "due-2": now - 1, "later": now + 3600})
    redis_client.zadd(keys.archiving(), {"ended-long-ago": now - 300, "ended-now": now})
    found = _gauges(collector)
    assert found[metrics.RETENTION_DUE] == 2
    assert found[metrics.HISTORY_BACKLOG] == 2
    assert 299 <= found[metrics.HISTORY_BACKLOG_AGE] < 330
