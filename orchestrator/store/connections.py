"""Redis clients from URLs: ``redis://``, ``rediss://`` (TLS), ``unix://``, ``sentinel://`` and a cluster's.

``sentinel://`` URLs use kombu's spelling, so one URL serves the broker and the store:
``sentinel://:password@host1:26379;sentinel://host2:26379/0`` with the master's name in
``ORCH_SENTINEL_MASTER``. A Redis Cluster (the run store only) is
``redis+cluster://[USER:PASSWORD@]HOST:PORT,HOST:PORT`` (``rediss+cluster://`` for TLS): any of its
nodes, from which redis-py's :class:`~redis.cluster.RedisCluster` discovers the others.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, TypeVar, cast
from urllib.parse import unquote, urlparse

from redis import Redis
from redis._parsers.commands import CommandPolicies, RequestPolicy, ResponsePolicy
from redis.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.commands.policies import BasePolicyResolver, PolicyResolver, StaticPolicyResolver
from redis.exceptions import ClusterDownError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.sentinel import Sentinel

from config import REDIS_SCHEMES, url_scheme
from config.urls import CLUSTER_SCHEMES, STORE_SCHEMES, cluster_nodes
from orchestrator.errors import ConfigurationError, ServiceUnavailable, on_public_methods

SENTINEL_PORT = 26379


def redis_client(url: str, *, sentinel_master: str | None = None) -> Redis:
    """A client with ``decode_responses=True`` for any URL the settings accept.

    Raises:
        ConfigurationError: a sentinel URL without a master name, or an unknown scheme.
    """
    scheme = url_scheme(url)
    if scheme == "sentinel":
        if not sentinel_master:
            raise ConfigurationError("a sentinel:// URL needs the master's name in ORCH_SENTINEL_MASTER")
        parts = [urlparse(part) for part in url.split(";")]
        hosts = [(p.hostname or "localhost", p.port or SENTINEL_PORT) for p in parts]
        last = parts[-1]
        db = int(last.path.strip("/") or 0)
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            hosts, socket_timeout=5, sentinel_kwargs={"password": last.password}
        )
        master: Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
            sentinel_master, db=db, password=last.password, decode_responses=True, socket_timeout=30
        )
        return master
    if scheme in CLUSTER_SCHEMES:
        return _cluster_client(url, tls=scheme == "rediss+cluster")
    if scheme == "redis+socket":  # kombu's spelling of a unix socket
        url = "unix://" + url.removeprefix("redis+socket://")
    if scheme in REDIS_SCHEMES:
        return Redis.from_url(url, decode_responses=True, health_check_interval=30)
    schemes = ", ".join(f"{s}://" for s in sorted(STORE_SCHEMES))
    raise ConfigurationError(f"the run store needs a Redis URL ({schemes}), not {scheme or 'no'} scheme")


def _cluster_client(url: str, *, tls: bool) -> Redis:
    """A :class:`~redis.cluster.RedisCluster`, typed as the :class:`~redis.Redis` whose commands it speaks
    (it routes each to the master of its keys' slot; the store's key layout keeps a script's keys in one)."""
    userinfo = url.split("://", 1)[1].rpartition("@")[0]
    user, _, password = userinfo.partition(":")
    try:
        nodes = [ClusterNode(host, port) for host, port in cluster_nodes(url)]  # type: ignore[no-untyped-call]
    except ValueError as exc:
        raise ConfigurationError(f"the run store's cluster URL {exc}") from exc
    client = _StoreCluster(
        startup_nodes=nodes,
        username=unquote(user) or None,
        password=unquote(password) or None,
        ssl=tls,
        decode_responses=True,
        socket_timeout=30,
    )
    return cast(Redis, client)


_KEYED = CommandPolicies(request_policy=RequestPolicy.DEFAULT_KEYED, response_policy=ResponsePolicy.DEFAULT_KEYED)


class _ScriptRouting(BasePolicyResolver):
    """Routes EVAL and EVALSHA by their keys, as :class:`RedisCluster` does outside a pipeline.

    Without it, redis-py 8's cluster pipeline asks a node for an EVALSHA's keys (``COMMAND GETKEYS``):
    one round trip more for each script a pipeline carries, a claim's among them.
    """

    def __init__(self, fallback: PolicyResolver | None = None) -> None:
        super().__init__({"core": {"eval": _KEYED, "evalsha": _KEYED}}, fallback or StaticPolicyResolver())

    def with_fallback(self, fallback: PolicyResolver) -> PolicyResolver:
        return _ScriptRouting(fallback)


class _StoreCluster(RedisCluster):
    """The store's cluster client: its pipelines route scripts by their keys (:class:`_ScriptRouting`)."""

    routing = _ScriptRouting()

    def pipeline(self, transaction: bool | None = None, shard_hint: Any = None) -> ClusterPipeline:
        pipe: ClusterPipeline = super().pipeline(transaction=transaction, shard_hint=shard_hint)  # type: ignore[no-untyped-call]
        pipe._policy_resolver = self.routing  # pipeline() does not hand the client's resolver on
        return pipe


def clustered(client: Redis) -> bool:
    """Whether the client speaks to a Redis Cluster (built by :func:`redis_client` from a cluster URL)."""
    return isinstance(client, RedisCluster)


def server_info(client: Redis, section: str, *, masters_only: bool = False) -> list[dict[str, Any]]:
    """``INFO section`` of the server; of each node on a cluster (its masters only if asked)."""
    if isinstance(client, RedisCluster):
        nodes = RedisCluster.PRIMARIES if masters_only else RedisCluster.ALL_NODES
        return list(cast(dict[str, dict[str, Any]], client.info(section, target_nodes=nodes)).values())
    return [client.info(section)]


_REDIS_REFUSAL = re.compile(r"Error (?:-?\d+ )?(?:connecting to|while reading from) (\S+?)\.? ?[:.]? (.+?)\.?$")


def unreachable(what: str, exc: BaseException) -> str:
    """``cannot reach Redis at HOST:PORT: connection refused``: one line for a connection error.

    Args:
        what: What could not be reached (``Redis``, ``the broker``).
        exc: The client's error; its text names the address (redis-py and kombu both say
            ``Error 111 connecting to HOST:PORT. Connection refused.``).
    """
    text = " ".join(str(exc).split())
    match = _REDIS_REFUSAL.search(text)
    if match:
        return f"cannot reach {what} at {match.group(1).rstrip('.:')}: {match.group(2).strip('. ').lower()}"
    return f"cannot reach {what}: {_without_passwords(text) or type(exc).__name__}"


def _without_passwords(text: str) -> str:
    return re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1****@", text)


_Method = TypeVar("_Method", bound=Callable[..., Any])
_Class = TypeVar("_Class", bound=type)


def reachable(method: _Method) -> _Method:
    """A store method whose connection errors surface as :class:`~orchestrator.errors.ServiceUnavailable`.

    The engine cannot tell redis-py's errors from others (it does not import Redis); this is the
    one place they become the error tree's.
    """

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise ServiceUnavailable(unreachable("Redis", exc)) from exc
        except (
            ClusterDownError,
            TryAgainError,
        ) as exc:  # a cluster between a master's failure and its replica's promotion
            raise ServiceUnavailable(f"the Redis Cluster cannot serve the run store right now: {exc}") from exc

    return cast(_Method, wrapper)


def all_reachable(cls: _Class) -> _Class:
    """Apply :func:`reachable` to every public method of a store class."""
    return on_public_methods(cls, reachable)
