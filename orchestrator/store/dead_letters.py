"""The dead-letter queue: messages a worker could not run at all, kept for listing and replay.

A message with a body that does not decode (not JSON, or a refused serializer such as pickle),
an unknown task name, or a malformed task envelope would be dropped by Celery with a log line.
Our worker consumer records it here first (raw body, headers, queue and the reason), then lets
Celery acknowledge it, so the worker keeps serving. ``orchestrator dead-letters`` lists them and
``replay`` publishes one back to its queue once the cause is fixed (e.g. the task's module deployed).
"""

from __future__ import annotations

import base64
import heapq
import json
import time
import uuid
from itertools import islice
from typing import Any, cast

from pydantic import BaseModel, ConfigDict
from redis import Redis

from orchestrator.engine.records import now_iso
from orchestrator.errors import DeadLetterNotFound
from orchestrator.store.keys import Keys


class DeadLetter(BaseModel):
    """One refused message.

    Attributes:
        id: Our id for it (not the task id, which a broken message may lack).
        reason: ``undecodable``, ``unknown_task``, ``invalid_task`` or ``unknown_message``.
        error: What the worker said.
        task: The task name from the headers, when there is one.
        task_id: The task id from the headers, when there is one.
        queue: The queue it came from.
        body: The raw body, base64.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    reason: str
    error: str
    task: str | None = None
    task_id: str | None = None
    queue: str
    received_at: str
    content_type: str | None = None
    content_encoding: str | None = None
    headers: dict[str, Any]
    body: str

    def raw_body(self) -> bytes:
        return base64.b64decode(self.body)


def _json_safe(value: Any) -> Any:
    return json.loads(json.dumps(value, default=repr))


class DeadLetters:
    """Dead letters in Redis.

    Args:
        client: Redis client (``decode_responses=True``).
        keys: Key namespace.
    """

    def __init__(self, client: Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys

    def record(
        self,
        reason: str,
        error: str,
        *,
        body: bytes | str,
        headers: dict[str, Any] | None,
        queue: str,
        content_type: str | None,
        content_encoding: str | None,
    ) -> DeadLetter:
        """Keep a refused message."""
        raw = body.encode("utf-8", "surrogateescape") if isinstance(body, str) else bytes(body or b"")
        safe_headers = _json_safe(headers or {})
        letter = DeadLetter(
            id=uuid.uuid4().hex,
            reason=reason,
            error=error[:2000],
            task=safe_headers.get("task") if isinstance(safe_headers.get("task"), str) else None,
            task_id=safe_headers.get("id") if isinstance(safe_headers.get("id"), str) else None,
            queue=queue,
            received_at=now_iso(),
            content_type=content_type,
            content_encoding=content_encoding,
            headers=safe_headers,
            body=base64.b64encode(raw).decode("ascii"),
        )
        shard = self.keys.shard(letter.id)  # on a cluster, letters are spread over the shards by id
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(shard.dead_letters(), letter.id, letter.model_dump_json())
        pipe.zadd(shard.dead_letter_index(), {letter.id: time.time()})
        pipe.execute()
        return letter

    def list(self, limit: int = 100) -> list[DeadLetter]:
        """Newest first (of all shards)."""
        shards = self.keys.all_shards
        pipe = self.redis.pipeline(transaction=False)
        for shard in shards:
            pipe.zrevrange(shard.dead_letter_index(), 0, limit - 1, withscores=True)
        found = cast(list[list[tuple[str, float]]], pipe.execute())
        newest = [i for i, _ in islice(heapq.merge(*found, key=lambda entry: entry[1], reverse=True), limit)]
        if not newest:
            return []
        by_shard: dict[str, list[str]] = {}
        for letter_id in newest:
            by_shard.setdefault(self.keys.shard(letter_id).dead_letters(), []).append(letter_id)
        pipe = self.redis.pipeline(transaction=False)
        for key, ids in by_shard.items():
            pipe.hmget(key, ids)
        raw = {
            i: r
            for ids, got in zip(by_shard.values(), pipe.execute(), strict=True)
            for i, r in zip(ids, got, strict=True)
        }
        return [DeadLetter.model_validate_json(raw[i]) for i in newest if raw[i] is not None]

    def get(self, letter_id: str) -> DeadLetter:
        """Raises: DeadLetterNotFound."""
        raw = cast(str | None, self.redis.hget(self.keys.shard(letter_id).dead_letters(), letter_id))
        if raw is None:
            raise DeadLetterNotFound(f"no dead letter {letter_id!r}; list them with `orchestrator dead-letters list`")
        return DeadLetter.model_validate_json(raw)

    def remove(self, letter_id: str) -> None:
        shard = self.keys.shard(letter_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(shard.dead_letters(), letter_id)
        pipe.zrem(shard.dead_letter_index(), letter_id)
        pipe.execute()
