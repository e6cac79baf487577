"""Direct mode: submit and read runs from Python over the broker and run store, without the HTTP API.

For Python services that share the broker and Redis with the workers. A run submitted this way
has ``trigger: api`` (it is the programmatic API, only not over HTTP) and ``started_by:
"python:<OS user>"``, so its history tells it from an HTTP caller (``token:<name>``) and from the
CLI (``user:<OS user>``). Each call connects and disconnects (:func:`orchestrator.services.services`);
a service that submits often keeps one :class:`~orchestrator.client.Client` or its own ``services()``.
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the imports happen in the functions: `import orchestrator` stays cheap
    from config import Settings
    from orchestrator.engine.records import RunRecord


def actor() -> str:
    """Who direct mode records as having started a run: ``python:<OS user>``."""
    return f"python:{getpass.getuser()}"


def submit(
    workflow_name: str,
    params: Mapping[str, Any] | None = None,
    *,
    idempotency_key: str | None = None,
    settings: Settings | None = None,
) -> str:
    """Start a run of a workflow of ``ORCH_WORKFLOWS_DIR``; the same idempotency key returns the same run.

    Args:
        workflow_name: The workflow's name.
        params: Its params, checked against its declarations.
        idempotency_key: A second submission with this key for this workflow returns the first run's id.
        settings: The settings (default: the environment's, as ``get_settings()`` reads them).

    Returns:
        The run's id.

    Raises:
        WorkflowNotFound: no such workflow in ``ORCH_WORKFLOWS_DIR``.
        InvalidParams: the params do not match its declaration; nothing is recorded.
        ServiceUnavailable: Redis or the broker cannot be reached.
    """
    from orchestrator.engine.records import Trigger
    from orchestrator.services import services

    with services(settings) as svc:
        workflow = svc.registry().get(workflow_name)
        submitted = svc.coordinator.submit(
            workflow, params, trigger=Trigger.API, started_by=actor(), idempotency_key=idempotency_key
        )
        return submitted.run_id


def get(run_id: str, *, settings: Settings | None = None) -> RunRecord:
    """The run record, read from the run store (or the durable history, once retention removed it).

    Raises:
        RunNotFound: no run with that id.
        ServiceUnavailable: Redis cannot be reached.
    """
    from orchestrator.services import services

    with services(settings) as svc:
        return svc.runs.get(run_id)
