"""Built-in tasks: the ``demo.*`` tasks the examples use, so they run with no user code."""

from __future__ import annotations

import random
import time
from typing import Any

from celery import Celery


class TransientError(ConnectionError):
    """A demo failure that the default retry policy (``on: [ConnectionError, ...]``) retries."""


def register(app: Celery) -> None:
    """Register the demo tasks on ``app``."""

    @app.task(name="demo.fetch", shared=False)
    def fetch(source: str, limit: int = 5) -> list[dict[str, Any]]:
        return [{"id": i, "title": f"{source} item {i}"} for i in range(limit)]

    @app.task(name="demo.process", shared=False)
    def process(items: list[dict[str, Any]]) -> dict[str, Any]:
        return {"count": len(items), "titles": [item["title"].upper() for item in items]}

    @app.task(name="demo.thumbnail", shared=False)
    def thumbnail(item: dict[str, Any], size: int = 128) -> str:
        return f"thumb-{item['id']}-{size}px.png"

    @app.task(name="demo.publish", shared=False)
    def publish(summary: dict[str, Any], thumbnails: list[str]) -> dict[str, Any]:
        return {"published": summary["count"], "thumbnails": len(thumbnails)}

    @app.task(name="demo.report", shared=False)
    def report(**fields: Any) -> dict[str, Any]:
        return {"report": fields}

    @app.task(name="demo.echo", shared=False)
    def echo(**fields: Any) -> dict[str, Any]:
        return fields

    @app.task(name="demo.sleep", shared=False)
    def sleep(seconds: float = 0.1, value: Any = None) -> Any:
        time.sleep(seconds)
        return value

    @app.task(name="demo.flaky", shared=False)
    def flaky(failure_rate: float = 0.5, value: Any = None) -> Any:
        if random.random() < failure_rate:
            raise TransientError("the demo service did not answer (transient)")
        return value

    @app.task(name="demo.fail", shared=False)
    def fail(message: str = "this step always fails") -> None:
        raise ValueError(message)

    @app.task(name="demo.notify", shared=False)
    def notify(run: dict[str, Any]) -> str:
        return f"run {run['run_id']} of {run['workflow']} {run['status']}"

    @app.task(name="demo.alert", shared=False)
    def alert(run: dict[str, Any]) -> str:
        failed = [name for name, step in run["steps"].items() if step["status"] == "failed"]
        return f"ALERT: run {run['run_id']} of {run['workflow']} failed at {', '.join(failed)}"
