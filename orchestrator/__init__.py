"""The coordinator: workflow definitions, the compiler, the run engine and its Redis store, the CLI.

The stages, each a folder: ``definition`` (file -> frozen models), ``plan`` (the pure compiler),
``engine`` (the run state machine and step logic, over the interfaces it needs), ``store`` and
``broker`` (Redis and Celery behind those interfaces), ``triggers`` (schedules), ``analysis``
(what ``plan`` and ``graph`` print), ``dev`` (the embedded default) and ``cli``.
"""

from orchestrator.definition import Workflow, load_file, load_text
from orchestrator.errors import OrchestratorError
from orchestrator.plan import Plan, compile_workflow

__all__ = ["OrchestratorError", "Plan", "Workflow", "compile_workflow", "load_file", "load_text"]
