"""Tasks the integration tests run on real workers. Each records its side effects in Redis.

A side effect is ``INCR {prefix}:effects:{name}``: the tests assert every count is exactly 1.
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import shared_task
from redis import Redis

_client: Redis | None = None


def effects_redis() -> Redis:
    """The Redis the tasks record their side effects in (a plain URL, whatever the store is)."""
    global _client
    if _client is None:
        # Effects go to a plain Redis URL even when the store is reached through Sentinel.
        url = os.environ.get("ORCH_TEST_EFFECTS_URL") or os.environ["ORCH_STORE_URL"]
        _client = Redis.from_url(url, decode_responses=True)
    return _client


def _key(name: str) -> str:
    return f"{os.environ['ORCH_KEY_PREFIX']}:effects:{name}"


@shared_task(name="t.effect")
def effect(name: str, sleep: float = 0.0, value: Any = None) -> Any:
    """Sleep, then record one side effect called ``name`` and return ``value``."""
    if sleep:
        time.sleep(sleep)
    effects_redis().incr(_key(name))
    effects_redis().rpush(_key("order"), name)
    return value if value is not None else name


@shared_task(name="t.square")
def square(x: int) -> int:
    effects_redis().incr(_key(f"square-{x}"))
    return x * x


@shared_task(name="t.flaky")
def flaky(name: str, failures: int, error: str = "ConnectionError") -> str:
    """Fail ``failures`` times (counted in Redis) with ``error``, then succeed."""
    attempt = effects_redis().incr(_key(f"attempts-{name}"))
    effects_redis().rpush(_key(f"times-{name}"), repr(time.time()))
    if attempt <= failures:
        raise {"ConnectionError": ConnectionError, "ValueError": ValueError}[error](f"{name} failed attempt {attempt}")
    effects_redis().incr(_key(name))
    return name


@shared_task(name="t.block")
def block(name: str, seconds: float = 30.0) -> str:
    """Announce the start, then sleep: the test kills the worker while this runs."""
    effects_redis().rpush(_key("started"), name)
    time.sleep(seconds)
    effects_redis().incr(_key(name))
    return name


@shared_task(name="t.items")
def items(count: int) -> list[int]:
    return list(range(count))


@shared_task(name="t.hook")
def hook(run: dict[str, Any]) -> None:
    """A run hook: records the status the run ended with."""
    effects_redis().rpush(_key("hooks"), f"{run['workflow']}:{run['status']}")


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("this message cannot be shown")


@shared_task(name="t.escape")
def escape(name: str, how: str) -> None:
    """Count the call, then end in a way that is not an ordinary exception."""
    effects_redis().incr(_key(f"calls-{name}"))
    if how == "exit":
        raise SystemExit(3)
    if how == "unprintable":
        raise _Unprintable()
    if how == "surrogate":
        raise OSError("cannot open /data/caf\udce9.txt")  # a file name that is not UTF-8
    if how == "base":
        raise BaseException("a bare BaseException")


@shared_task(name="t.surrogate_output")
def surrogate_output() -> str:
    return "caf\udce9"


@shared_task(name="t.gauge")
def gauge(name: str) -> dict[str, Any]:
    """A sensor's check: the value a test set at ``effects:gauge-{name}`` (0 when unset); counts its calls."""
    effects_redis().incr(_key(f"checks-{name}"))
    return {"percent": int(effects_redis().get(_key(f"gauge-{name}")) or 0)}


@shared_task(name="t.chatty")
def chatty(name: str) -> str:
    """Log a warning the way user code does (plain ``logging``): the worker's lines carry the step's context."""
    import logging

    logging.getLogger("user.code").warning("user code says %s", name)
    print(f"chatty prints {name}")  # noqa: T201 - a worker turns it into a log line (one per write)
    return name


HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(2)>"
# No quotes inside: an output shown as JSON keeps the same text.
"""Markup a page must show as text: run, it would open a dialog (tests/ui)."""


@shared_task(name="t.hostile")
def hostile(fail: bool = False) -> str:
    """Return :data:`HOSTILE` as the output, or (``fail``) raise a ValueError whose message carries it."""
    if fail:
        raise ValueError(f"bad input {HOSTILE}")
    return HOSTILE
