"""Tasks of the Sentry tests: a step that logs an error itself, and a hook that logs the whole run."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

log = logging.getLogger("user.tasks")


@shared_task(name="s.log_error")
def log_error(text: str) -> str:
    """Log an error (Sentry's logging integration makes it an event) and succeed."""
    log.error("user task says %s", text)
    return text


@shared_task(name="s.leaky_hook")
def leaky_hook(run: dict[str, Any]) -> None:
    """A run hook that logs the run record (params, outputs) as structured data of an error."""
    log.error("run %s ended %s", run["run_id"], run["status"], extra={"run": run})
