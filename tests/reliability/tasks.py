"""Tasks only the reliability tests run. Side effects are recorded in Redis, as in ``tests/integration/tasks.py``.

The soak's step records every call and every side effect in two hashes keyed ``run:step``, so
10,000 step executions cost two keys, not 10,000.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

from celery import shared_task

from tests.integration.tasks import effects_redis


def calls_key(prefix: str) -> str:
    """Hash ``run:step`` -> how many times the task was called (attempts that ran)."""
    return f"{prefix}:soak:calls"


def effects_key(prefix: str) -> str:
    """Hash ``run:step`` -> how many times its side effect happened (must be 1)."""
    return f"{prefix}:soak:effects"


@shared_task(name="r.unreliable")
def unreliable(run: str, step: str, failure_rate: float = 0.0) -> str:
    """Fail with a ``ConnectionError`` with probability ``failure_rate``, else record one side effect."""
    prefix = os.environ["ORCH_KEY_PREFIX"]
    member = f"{run}:{step}"
    effects_redis().hincrby(calls_key(prefix), member, 1)
    if random.random() < failure_rate:
        raise ConnectionError(f"injected transient failure of {member}")
    effects_redis().hincrby(effects_key(prefix), member, 1)
    return step


def nemesis_key(prefix: str, what: str) -> str:
    """Keys of the nemesis soak's evidence: ``effects`` (hash key -> count), ``log`` (list of events)."""
    return f"{prefix}:nemesis:{what}"


@shared_task(name="n.effect")
def nemesis_effect(key: str, sleep: float = 0.0, fail_first: int = 0, value: Any = None) -> Any:
    """A side effect the nemesis checker can prove: when each execution started, and each effect.

    ``key`` names the effect (``run:step`` or ``run:step:item``); the first ``fail_first`` attempts
    raise ``ConnectionError`` before the effect (a transient failure the retry policy handles).
    """
    prefix = os.environ["ORCH_KEY_PREFIX"]
    redis = effects_redis()
    redis.rpush(nemesis_key(prefix, "log"), f"start {key} {time.time():.6f} {os.getpid()}")
    if fail_first and redis.hincrby(nemesis_key(prefix, "attempts"), key, 1) <= fail_first:
        raise ConnectionError(f"injected transient failure of {key}")
    if sleep:
        time.sleep(sleep)
    # The effect and its evidence in one transaction: a SIGKILL between two separate writes left an
    # effect without the record of who made it, and the checker could not tell the kill explained it.
    effect = redis.pipeline(transaction=True)
    effect.hincrby(nemesis_key(prefix, "effects"), key, 1)
    effect.rpush(nemesis_key(prefix, "log"), f"end {key} {time.time():.6f} {os.getpid()}")
    effect.execute()
    return value
