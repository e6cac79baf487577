"""Per-process wiring of a worker: the run store, the coordinator and the lease keeper."""

from __future__ import annotations

from typing import Any

from celery import Celery

from config import Settings
from orchestrator.broker.dispatch import CeleryDispatcher
from orchestrator.engine.coordinator import Coordinator
from orchestrator.engine.records import StepError
from orchestrator.engine.unit import StepMessage
from orchestrator.plan.policy import base_policy
from orchestrator.store.connections import redis_client
from orchestrator.store.keys import Keys
from orchestrator.store.redis_store import RedisRunStore
from workers.leases import LeaseKeeper


class Runtime:
    """What the step task needs, built once per app (redis-py reconnects after a fork by itself).

    Args:
        app: The Celery app (used to publish).
        settings: The settings the app was built from.
        store_url: The run store's Redis URL.
    """

    def __init__(self, app: Celery, settings: Settings, store_url: str) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.redis = redis_client(store_url, sentinel_master=settings.sentinel_master)
        self.store = RedisRunStore(self.redis, self.keys)
        self.coordinator = Coordinator(
            self.store,
            CeleryDispatcher(app),
            base_policy=base_policy(settings.defaults),
            lease_seconds=settings.worker.lease,
        )
        self.leases = LeaseKeeper(self.redis, self.keys, settings.worker.lease)

    def hard_timeout(self, kwargs: dict[str, Any], task_id: str, timeout: float) -> None:
        """A child was killed at the hard time limit: the attempt failed with a TimeoutError."""
        message = StepMessage.model_validate(kwargs)
        plan = self.store.load_plan(message.plan_id)
        error = StepError(type="TimeoutError", message=f"hard time limit of {timeout:g}s exceeded")
        retryable = plan.steps[message.step].policy.retry.retries(["TimeLimitExceeded", "TimeoutError"])
        self.coordinator.attempt_failed(plan, message, task_id, error, retryable)
