"""A task that only the second worker of the poison-message test knows."""

from __future__ import annotations

import os

from celery import shared_task
from redis import Redis


@shared_task(name="t.late")
def late(name: str) -> str:
    url = os.environ.get("ORCH_TEST_EFFECTS_URL") or os.environ["ORCH_STORE_URL"]
    Redis.from_url(url).incr(f"{os.environ['ORCH_KEY_PREFIX']}:effects:{name}")
    return name
