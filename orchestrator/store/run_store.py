"""The run store on Redis: one client, one key namespace, one part per concern.

Implements :class:`orchestrator.engine.ports.RunStore`; the engine sees only that protocol.
"""

from __future__ import annotations

from redis import Redis

from orchestrator.store.archive import RedisArchive
from orchestrator.store.dead_letters import DeadLetters
from orchestrator.store.keys import Keys
from orchestrator.store.leases import RedisLeases
from orchestrator.store.retention import RedisRetention
from orchestrator.store.runs import SUBMISSION_TTL, RedisRuns
from orchestrator.store.schedules import RedisSchedules
from orchestrator.store.scripts import Scripts
from orchestrator.store.sensors import RedisSensors
from orchestrator.store.side_effects import RedisSideEffects
from orchestrator.store.transitions import RedisSteps


class RedisRunStore:
    """Every run's state in one Redis.

    Args:
        client: A client with ``decode_responses=True``.
        keys: The key namespace.
        submission_ttl: Seconds a submission's idempotency key answers with its run (``ORCH_SUBMISSION_TTL``).
    """

    def __init__(self, client: Redis, keys: Keys | None = None, *, submission_ttl: float = SUBMISSION_TTL) -> None:
        self.redis = client
        self.keys = keys or Keys()
        scripts = Scripts.register(client)
        self.runs = RedisRuns(client, self.keys, scripts, submission_ttl=submission_ttl)
        self.steps = RedisSteps(client, self.keys, scripts)
        self.side_effects = RedisSideEffects(client, self.keys, scripts)
        self.leases = RedisLeases(client, self.keys, scripts)
        self.dead_letters = DeadLetters(client, self.keys)
        self.schedules = RedisSchedules(client, self.keys, scripts)
        self.sensors = RedisSensors(client, self.keys, scripts)
        self.archive = RedisArchive(client, self.keys, scripts, self.runs)
        self.retention = RedisRetention(client, self.keys, scripts, self.runs)
