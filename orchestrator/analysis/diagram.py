"""The DAG as a diagram: Mermaid (renders on GitHub) or Graphviz DOT.

Fan-out (``for_each``) steps are drawn as stacked nodes, conditional steps (``when``) as
diamonds-in-spirit (a ``?`` marker), and edges are labelled with non-default trigger rules.
When step statuses are given (a run), nodes are coloured by status.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum

from orchestrator.definition.models import TriggerRule, Workflow


class DiagramFormat(StrEnum):
    MERMAID = "mermaid"
    DOT = "dot"


_COLOURS = {
    "pending": "#e0e0e0",
    "queued": "#cfe2ff",
    "running": "#9ec5fe",
    "retrying": "#ffe69c",
    "succeeded": "#a3cfbb",
    "failed": "#f1aeb5",
    "skipped": "#f8f9fa",
    "cancelled": "#adb5bd",
}


def _label(workflow: Workflow, name: str) -> str:
    step = workflow.steps[name]
    label = f"{name}\\n{step.task}"
    if step.for_each is not None:
        label += "\\n(for each)"
    if step.when is not None:
        label += "\\n(when ?)"
    return label


def mermaid(workflow: Workflow, statuses: Mapping[str, str] | None = None) -> str:
    """A Mermaid ``flowchart`` of the workflow."""
    ids = {name: f"s{i}" for i, name in enumerate(workflow.steps)}
    lines = ["flowchart TD"]
    for name, step in workflow.steps.items():
        text = _label(workflow, name).replace("\\n", "<br/>").replace('"', "#quot;")
        shape = f'[["{text}"]]' if step.for_each is not None else f'["{text}"]'
        lines.append(f"    {ids[name]}{shape}")
    for name, step in workflow.steps.items():
        for need in step.needs:
            if step.trigger_rule is TriggerRule.ALL_SUCCESS:
                lines.append(f"    {ids[need]} --> {ids[name]}")
            else:
                lines.append(f"    {ids[need]} -.->|{step.trigger_rule.value}| {ids[name]}")
    for status, colour in _COLOURS.items():
        members = [ids[n] for n, s in (statuses or {}).items() if s == status and n in ids]
        if members:
            lines.append(f"    classDef {status} fill:{colour}")
            lines.append(f"    class {','.join(members)} {status}")
    return "\n".join(lines) + "\n"


def dot(workflow: Workflow, statuses: Mapping[str, str] | None = None) -> str:
    """A Graphviz ``digraph`` of the workflow."""
    lines = [
        f"digraph {json.dumps(workflow.workflow)} {{",
        "    rankdir=TB;",
        '    node [shape=box, style="rounded,filled", fillcolor="#ffffff"];',
    ]
    for name, step in workflow.steps.items():
        attrs = [f'label="{_label(workflow, name)}"']
        if step.for_each is not None:
            attrs.append("peripheries=2")
        if statuses and name in statuses:
            attrs.append(f'fillcolor="{_COLOURS.get(statuses[name], "#ffffff")}"')
        lines.append(f"    {json.dumps(name)} [{', '.join(attrs)}];")
    for name, step in workflow.steps.items():
        for need in step.needs:
            style = (
                ""
                if step.trigger_rule is TriggerRule.ALL_SUCCESS
                else f' [style=dashed, label="{step.trigger_rule.value}"]'
            )
            lines.append(f"    {json.dumps(need)} -> {json.dumps(name)}{style};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(workflow: Workflow, fmt: DiagramFormat, statuses: Mapping[str, str] | None = None) -> str:
    """The diagram in the requested format."""
    return mermaid(workflow, statuses) if fmt is DiagramFormat.MERMAID else dot(workflow, statuses)
