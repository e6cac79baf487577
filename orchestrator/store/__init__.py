"""The run store on Redis: keys, Lua scripts, connections, and the store's parts by concern."""

from orchestrator.store.connections import redis_client
from orchestrator.store.keys import Keys
from orchestrator.store.run_store import RedisRunStore

__all__ = ["Keys", "RedisRunStore", "redis_client"]
