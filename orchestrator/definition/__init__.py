"""Workflow definitions: YAML/JSON files to validated, frozen models, with every problem located.

``document`` parses the text with positions, ``loader`` validates it into ``models``, ``checks``
runs the checks across fields (the graph in ``graph``, ``references``, ``expressions``,
``params``, ``durations``), ``problems`` words pydantic's errors, and ``registry`` knows the
workflows of a directory by name.
"""

from orchestrator.definition.loader import build_workflow, load_file, load_text
from orchestrator.definition.models import Param, Policy, RetrySpec, Schedule, Step, TriggerRule, Workflow
from orchestrator.definition.registry import WorkflowRegistry

__all__ = [
    "Param",
    "Policy",
    "RetrySpec",
    "Schedule",
    "Step",
    "TriggerRule",
    "Workflow",
    "WorkflowRegistry",
    "build_workflow",
    "load_file",
    "load_text",
]
