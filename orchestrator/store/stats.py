"""What the run store holds, for ``orchestrator store stats``: keys and bytes per kind, the oldest finished run.

An operator's tool, never on a run's path: it SCANs the whole namespace (kinds by
:meth:`~orchestrator.store.keys.Keys.kind`), asks ``MEMORY USAGE`` of the first ``sample`` keys of
each kind and estimates the others' bytes from them, and reads the finished time of every run in
:meth:`~orchestrator.store.keys.Keys.expiring` (every finished run is there) to find the oldest.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from itertools import islice
from typing import Any, cast

from redis import Redis

from orchestrator.store.connections import server_info
from orchestrator.store.keys import Keys

SCAN_COUNT = 1000
"""Keys asked of each SCAN call."""


@dataclass
class KindStats:
    """The keys of one kind.

    Attributes:
        keys: How many there are.
        bytes: Their ``MEMORY USAGE``, measured on ``sampled`` of them and scaled to all.
        sampled: How many were measured (all of them when it equals ``keys``).
    """

    keys: int = 0
    bytes: int = 0
    sampled: int = 0
    measured: int = field(default=0, repr=False)
    """Bytes of the sampled keys."""

    @property
    def estimated(self) -> bool:
        return self.sampled < self.keys


@dataclass(frozen=True)
class FinishedRun:
    """A finished run still in Redis, and when retention removes it."""

    run_id: str
    workflow: str
    status: str
    finished_at: str
    removed_after: float
    """Epoch seconds: its score in ``expiring`` (the janitor removes it at its first sweep after this)."""


@dataclass
class StoreStats:
    """The namespace's keys by kind, and the runs' state of retention.

    Attributes:
        kinds: Keys and bytes by kind, most bytes first.
        used_memory: The whole server's ``used_memory`` (every namespace, the broker's too).
        runs: Runs in the runs index (what lists show).
        finished: Finished runs waiting for their retention to end.
        due: Of those, the ones whose retention has ended (more than a sweep's batch means the
            janitor falls behind, or no worker runs).
        archiving: Finished runs waiting to be written to the durable history.
        oldest_finished: The finished run that ended first, None when none is kept.
    """

    kinds: dict[str, KindStats]
    used_memory: int
    runs: int
    finished: int
    due: int
    archiving: int
    oldest_finished: FinishedRun | None

    def as_json(self) -> dict[str, Any]:
        """Plain JSON data, ``total`` added to ``kinds``."""
        kinds = {
            name: {"keys": k.keys, "bytes": k.bytes, "sampled": k.sampled, "estimated": k.estimated}
            for name, k in self.kinds.items()
        }
        total = {"keys": sum(k.keys for k in self.kinds.values()), "bytes": sum(k.bytes for k in self.kinds.values())}
        oldest = asdict(self.oldest_finished) if self.oldest_finished else None
        return {
            "kinds": kinds,
            "total": total,
            "used_memory": self.used_memory,
            "runs": self.runs,
            "finished": self.finished,
            "due": self.due,
            "archiving": self.archiving,
            "oldest_finished": oldest,
        }


def measure(client: Redis, keys: Keys, *, sample: int = 200, now: float | None = None) -> StoreStats:
    """Scan the namespace of ``keys`` and measure it (see the module's docstring).

    Args:
        client: The store's client (``decode_responses=True``).
        keys: The namespace.
        sample: Keys of each kind whose memory is measured; the other keys' bytes are estimated.
        now: The moment ``due`` is judged at (epoch s); default the clock.
    """
    now = time.time() if now is None else now
    kinds: dict[str, KindStats] = {}
    scanned = client.scan_iter(match=f"{keys.prefix}:*", count=SCAN_COUNT)  # on a cluster, every master's
    while batch := list(islice(scanned, SCAN_COUNT)):
        measured: list[str] = []
        asked: Counter[str] = Counter()
        pipe = client.pipeline(transaction=False)
        for key in batch:
            kind = keys.kind(key) or "other"
            stats = kinds.setdefault(kind, KindStats())
            stats.keys += 1
            if stats.sampled + asked[kind] < sample:
                asked[kind] += 1
                measured.append(kind)
                pipe.memory_usage(key)
        for kind, used in zip(measured, pipe.execute(), strict=True):
            if used is not None:  # gone since the scan saw it
                kinds[kind].sampled += 1
                kinds[kind].measured += int(used)
    for stats in kinds.values():
        stats.bytes = round(stats.measured * stats.keys / stats.sampled) if stats.sampled else 0
    pipe = client.pipeline(transaction=False)
    for shard in keys.all_shards:
        pipe.zcard(shard.runs())
        pipe.zcard(shard.expiring())
        pipe.zcount(shard.expiring(), "-inf", now)
        pipe.zcard(shard.archiving())
    counts = [int(count) for count in pipe.execute()]
    runs, finished, due, archiving = (sum(counts[i::4]) for i in range(4))
    return StoreStats(
        kinds=dict(sorted(kinds.items(), key=lambda item: -item[1].bytes)),
        used_memory=used_memory(client),
        runs=runs,
        finished=finished,
        due=due,
        archiving=archiving,
        oldest_finished=oldest_finished(client, keys),
    )


def used_memory(client: Redis) -> int:
    """The server's ``used_memory``; on a cluster, the sum of its nodes' (replicas' too)."""
    return sum(int(node.get("used_memory", 0)) for node in server_info(client, "memory"))


def oldest_finished(client: Redis, keys: Keys, batch: int = 1000) -> FinishedRun | None:
    """The kept run that finished first: the finished time of every run in ``expiring`` is read
    (retentions differ by workflow, so the first to be removed need not be the first that ended)."""
    oldest: FinishedRun | None = None
    for shard in keys.all_shards:
        oldest = _oldest_of(client, keys, shard.expiring(), batch, oldest)
    return oldest


def _oldest_of(client: Redis, keys: Keys, expiring: str, batch: int, oldest: FinishedRun | None) -> FinishedRun | None:
    start = 0
    while entries := cast(list[tuple[str, float]], client.zrange(expiring, start, start + batch - 1, withscores=True)):
        start += batch
        pipe = client.pipeline(transaction=False)
        for run_id, _ in entries:
            pipe.hmget(keys.run(run_id), ["finished_at", "workflow", "status"])
        for (run_id, score), (finished_at, workflow, status) in zip(entries, pipe.execute(), strict=True):
            if finished_at and (oldest is None or finished_at < oldest.finished_at):
                oldest = FinishedRun(str(run_id), str(workflow), str(status), str(finished_at), float(score))
    return oldest
