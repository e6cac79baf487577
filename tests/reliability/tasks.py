"""Tasks only the reliability tests run. Side effects are recorded in Redis, as in ``tests/integration/tasks.py``.

The soak's step records every call and every side effect in two hashes keyed ``run:step``, so
10,000 step executions cost two keys, not 10,000.
"""

from __future__ import annotations

import os
import random

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
