"""The worker's consumer: poison messages go to the dead-letter queue instead of vanishing."""

from __future__ import annotations

import logging
from typing import Any

from celery.worker.consumer.consumer import Consumer

from orchestrator.observability.events import dead_lettered
from orchestrator.observability.metrics import DEAD_LETTERS
from workers.runtime import runtime_of

log = logging.getLogger(__name__)


class DeadLetterConsumer(Consumer):  # type: ignore[misc]
    """Records each message Celery would drop (then lets Celery acknowledge it as usual)."""

    def _keep(self, reason: str, message: Any, exc: BaseException | None) -> None:
        try:
            letters = runtime_of(self.app).store.dead_letters
            info = getattr(message, "delivery_info", None) or {}
            letter = letters.record(
                reason,
                f"{type(exc).__name__}: {exc}" if exc is not None else "unknown message format",
                body=message.body,
                headers=getattr(message, "headers", None),
                queue=str(info.get("routing_key") or info.get("queue") or self.app.conf.task_default_queue),
                content_type=getattr(message, "content_type", None),
                content_encoding=getattr(message, "content_encoding", None),
            )
            DEAD_LETTERS.labels(reason).inc()
            dead_lettered(
                letter_id=letter.id,
                reason=reason,
                queue=letter.queue,
                task_id=letter.task_id,
                task=letter.task,
                error=letter.error,
            )
        except Exception:  # the consumer must keep serving whatever happens here
            log.exception("could not record a %s message in the dead-letter queue", reason)

    def on_decode_error(self, message: Any, exc: BaseException) -> None:
        self._keep("undecodable", message, exc)
        super().on_decode_error(message, exc)

    def on_unknown_task(self, body: Any, message: Any, exc: BaseException) -> None:
        self._keep("unknown_task", message, exc)
        super().on_unknown_task(body, message, exc)

    def on_invalid_task(self, body: Any, message: Any, exc: BaseException) -> None:
        self._keep("invalid_task", message, exc)
        super().on_invalid_task(body, message, exc)

    def on_unknown_message(self, body: Any, message: Any) -> None:
        self._keep("unknown_message", message, None)
        super().on_unknown_message(body, message)
