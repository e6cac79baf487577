"""The Lua scripts that make each state transition atomic, loaded once per Redis client.

Each script in ``lua/`` opens with its key and argument layout and names every slot as a local;
``lua/lib.lua`` (what a status means, lease liveness, counting a dead execution) is prepended to
every script when it is loaded, since Redis scripts cannot include one another.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

from redis import Redis
from redis.commands.core import Script

from orchestrator.store.keys import Keys

LIBRARY = "lib"


@cache
def source(name: str) -> str:
    """The text Redis runs for script ``name``: the shared library, then the script."""
    folder = resources.files("orchestrator.store").joinpath("lua")
    library = folder.joinpath(f"{LIBRARY}.lua").read_text(encoding="utf-8")
    return library + "\n" + folder.joinpath(f"{name}.lua").read_text(encoding="utf-8")


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
    schedule: Script
    sense: Script
    sensed: Script
    expire: Script

    @classmethod
    def register(cls, client: Redis) -> Scripts:
        return cls(**{name: client.register_script(source(name)) for name in cls.__dataclass_fields__})


class Part:
    """A part of the run store: the client, the key namespace and the scripts it runs.

    Args:
        client: A client with ``decode_responses=True``.
        keys: The key namespace.
        scripts: The scripts registered on ``client``.
    """

    def __init__(self, client: Redis, keys: Keys, scripts: Scripts) -> None:
        self.redis = client
        self.keys = keys
        self.scripts = scripts
