"""Publishing to the broker: the engine's dispatcher on a Celery app (batched on Redis)."""

from orchestrator.broker.dispatch import CeleryDispatcher

__all__ = ["CeleryDispatcher"]
