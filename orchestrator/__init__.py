"""The coordinator: workflow definitions, the compiler, the run engine and its Redis store, the CLI, the API.

The stages, each a folder: ``definition`` (file -> frozen models), ``plan`` (the pure compiler),
``engine`` (the run state machine and step logic, over the interfaces it needs), ``store`` and
``broker`` (Redis and Celery behind those interfaces), ``triggers`` (schedules), ``analysis``
(what ``plan`` and ``graph`` print), ``dev`` (the embedded default), ``cli`` and ``api``.

For Python services: :class:`Client` and :class:`AsyncClient` talk to the HTTP API;
:func:`submit` and :func:`get` (direct mode) go straight to the broker and store. Both load
lazily, so ``import orchestrator`` stays cheap.
"""

from typing import TYPE_CHECKING, Any

from orchestrator.definition import Workflow, load_file, load_text
from orchestrator.direct import get, submit
from orchestrator.errors import OrchestratorError
from orchestrator.plan import Plan, compile_workflow

if TYPE_CHECKING:
    from orchestrator.client import AsyncClient, Client

__all__ = [
    "AsyncClient",
    "Client",
    "OrchestratorError",
    "Plan",
    "Workflow",
    "compile_workflow",
    "get",
    "load_file",
    "load_text",
    "submit",
]


def __getattr__(name: str) -> Any:
    """``Client`` and ``AsyncClient`` import httpx: only when asked for."""
    if name in ("Client", "AsyncClient"):
        from orchestrator import client

        return getattr(client, name)
    raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
