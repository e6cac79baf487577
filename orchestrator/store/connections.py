"""Redis clients from URLs: ``redis://``, ``rediss://`` (TLS), ``unix://`` and ``sentinel://``.

``sentinel://`` URLs use kombu's spelling, so one URL serves the broker and the store:
``sentinel://:password@host1:26379;sentinel://host2:26379/0`` with the master's name in
``ORCH_SENTINEL_MASTER``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, TypeVar, cast
from urllib.parse import urlparse

from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.sentinel import Sentinel

from config import REDIS_SCHEMES, url_scheme
from orchestrator.errors import ConfigurationError, ServiceUnavailable

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
    if scheme == "redis+socket":  # kombu's spelling of a unix socket
        url = "unix://" + url.removeprefix("redis+socket://")
    if scheme in REDIS_SCHEMES:
        return Redis.from_url(url, decode_responses=True, health_check_interval=30)
    schemes = ", ".join(f"{s}://" for s in sorted(REDIS_SCHEMES))
    raise ConfigurationError(f"the run store needs a Redis URL ({schemes}), not {scheme or 'no'} scheme")


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

    return cast(_Method, wrapper)


def all_reachable(cls: _Class) -> _Class:
    """Apply :func:`reachable` to every public method of a store class."""
    for name, member in list(vars(cls).items()):
        if callable(member) and not name.startswith("_"):
            setattr(cls, name, reachable(member))
    return cls
