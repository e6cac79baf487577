"""The Lua scripts that make each state transition atomic, loaded once per Redis client."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from redis import Redis
from redis.commands.core import Script


def _source(name: str) -> str:
    return resources.files("orchestrator.store").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Scripts:
    """Registered scripts; each call is one EVALSHA (redis-py falls back to EVAL on NOSCRIPT)."""

    claim: Script
    complete: Script
    retry: Script
    item: Script
    cancel: Script
    idempotency: Script
    recover: Script

    @classmethod
    def register(cls, client: Redis) -> Scripts:
        return cls(**{name: client.register_script(_source(name)) for name in cls.__dataclass_fields__})
