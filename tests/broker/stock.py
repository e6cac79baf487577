"""A stock Celery app, none of ours: a task named like our step task that writes down what it received.

Started by ``tests/broker/test_protocol.py`` as ``celery -A tests.broker.stock worker`` (and
``flower``) with ``STOCK_BROKER``, ``STOCK_PREFIX`` and ``STOCK_REDIS`` in its environment.
"""

from __future__ import annotations

import json
import os
from typing import Any

from celery import Celery, Task
from redis import Redis

app = Celery("stock", broker=os.environ.get("STOCK_BROKER", "redis://127.0.0.1:6379/0"))
app.conf.update(
    broker_transport_options={"global_keyprefix": os.environ.get("STOCK_PREFIX", "stock:broker:")},
    task_serializer="json",
    accept_content=["json"],
    worker_hijack_root_logger=False,
)


@app.task(name="orchestrator.step", bind=True, ignore_result=True)
def step(task: Task, *args: Any, **kwargs: Any) -> None:
    """Record the arguments and the request's headers as the worker saw them."""
    request = task.request
    seen = {
        "args": list(args),
        "kwargs": kwargs,
        "id": request.id,
        "timelimit": list(request.timelimit or ()),
        "routing_key": (request.delivery_info or {}).get("routing_key"),
        "priority": (request.delivery_info or {}).get("priority"),
        "eta": request.eta,
    }
    Redis.from_url(os.environ["STOCK_REDIS"]).rpush(os.environ["STOCK_SEEN"], json.dumps(seen))
