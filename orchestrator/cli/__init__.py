"""The ``orchestrator`` command line: a composition root that wires settings, store and Celery."""

from orchestrator.cli.main import app, main

__all__ = ["app", "main"]
