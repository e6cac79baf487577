"""The run store on Redis: one client, one key namespace, one part per concern.

Implements :class:`orchestrator.engine.ports.RunStore`; the engine sees only that protocol.
"""

from __future__ import annotations

from redis import Redis

from orchestrator.errors import ConfigurationError
from orchestrator.store.archive import RedisArchive
from orchestrator.store.connections import clustered, redis_client
from orchestrator.store.dead_letters import DeadLetters
from orchestrator.store.keys import DEFAULT_PREFIX, DEFAULT_SHARDS, Keys
from orchestrator.store.leases import RedisLeases
from orchestrator.store.retention import RedisRetention
from orchestrator.store.runs import SUBMISSION_TTL, RedisRuns
from orchestrator.store.schedules import RedisSchedules
from orchestrator.store.scripts import Scripts
from orchestrator.store.sensors import RedisSensors
from orchestrator.store.side_effects import RedisSideEffects
from orchestrator.store.transitions import RedisSteps


class RedisRunStore:
    """Every run's state in one Redis, or in a Redis Cluster.

    Args:
        client: A client with ``decode_responses=True``.
        keys: The key namespace; sharded (``Keys.shards``) exactly when ``client`` is a cluster's.
        submission_ttl: Seconds a submission's idempotency key answers with its run (``ORCH_SUBMISSION_TTL``).
        fixed_threads: The process's threads are a fixed set (a ``--pool threads`` worker's): each
            keeps a connection for the scripts' calls, not only the main thread
            (:class:`~orchestrator.store.scripts.KeptConnection`).

    Raises:
        ConfigurationError: a cluster's client with the one-Redis key layout, or the other way round.
    """

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        shards: int = DEFAULT_SHARDS,
        sentinel_master: str | None = None,
        submission_ttl: float = SUBMISSION_TTL,
        fixed_threads: bool = False,
    ) -> RedisRunStore:
        """The store at ``url`` (any URL :func:`~orchestrator.store.connections.redis_client` takes); on a
        cluster the namespace is cut into ``shards`` (``ORCH_STORE_SHARDS``). Close it with :meth:`close`."""
        client = redis_client(url, sentinel_master=sentinel_master)
        keys = Keys(prefix, shards if clustered(client) else 0)
        return cls(client, keys, submission_ttl=submission_ttl, fixed_threads=fixed_threads)

    def __init__(
        self,
        client: Redis,
        keys: Keys | None = None,
        *,
        submission_ttl: float = SUBMISSION_TTL,
        fixed_threads: bool = False,
    ) -> None:
        self.redis = client
        self.keys = keys or Keys()
        if clustered(client) != self.keys.clustered:
            layout = f"{self.keys.shards} shards" if self.keys.clustered else "one shard"
            raise ConfigurationError(f"the key layout ({layout}) does not fit the client's Redis (cluster or not)")
        scripts = Scripts.register(client, fixed_threads=fixed_threads)
        self.runs = RedisRuns(client, self.keys, scripts, submission_ttl=submission_ttl)
        self.steps = RedisSteps(client, self.keys, scripts)
        self.side_effects = RedisSideEffects(client, self.keys, scripts)
        self.leases = RedisLeases(client, self.keys, scripts)
        self.dead_letters = DeadLetters(client, self.keys)
        self.schedules = RedisSchedules(client, self.keys, scripts)
        self.sensors = RedisSensors(client, self.keys, scripts)
        self.archive = RedisArchive(client, self.keys, scripts, self.runs)
        self.retention = RedisRetention(client, self.keys, scripts, self.runs)

    def close(self) -> None:
        """Close the client's connections."""
        self.redis.close()
