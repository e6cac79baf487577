"""``validate``, ``graph`` and ``plan``: commands on workflow files that need no broker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from config import get_settings
from orchestrator.analysis.celery_canvas import canvas_bytes, to_celery
from orchestrator.analysis.diagram import DiagramFormat
from orchestrator.analysis.diagram import render as render_diagram
from orchestrator.analysis.report import report
from orchestrator.cli.console import out, report_error
from orchestrator.definition.loader import load_file
from orchestrator.definition.models import Workflow
from orchestrator.errors import InvalidWorkflow
from orchestrator.plan.compiler import compile_workflow
from orchestrator.plan.policy import base_policy


def load(path: Path) -> Workflow:
    """Load a workflow file, checking task names when the worker app can be built here.

    Raises:
        InvalidWorkflow: every problem of the file.
    """
    return load_file(path, tasks=known_tasks())


def known_tasks() -> frozenset[str] | None:
    """Task names registered by the worker app, or None when it cannot be imported here."""
    from orchestrator.services import registered_tasks

    return registered_tasks()


def validate(files: Annotated[list[Path], typer.Argument(help="Workflow files (YAML or JSON).")]) -> None:
    """Check workflow files and print every problem as FILE:LINE:COL: message."""
    tasks = known_tasks()
    failed = False
    for path in files:
        try:
            workflow = load_file(path, tasks=tasks)
        except InvalidWorkflow as exc:
            failed = True
            report_error(exc)
            continue
        note = "" if tasks is not None else " (task names not checked: no worker app importable)"
        out.print(f"{path}: ok, {len(workflow.steps)} steps{note}", markup=False, emoji=False)
    if failed:
        raise typer.Exit(InvalidWorkflow.exit_code)


def graph(
    file: Path,
    fmt: Annotated[DiagramFormat, typer.Option("--format", "-f", help="Diagram language.")] = DiagramFormat.MERMAID,
) -> None:
    """Print the workflow's DAG as a Mermaid or Graphviz diagram."""
    workflow = load(file)
    out.print(render_diagram(workflow, fmt), end="", markup=False, emoji=False)


def plan(
    file: Path,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Print the compiled canvas, runtime joins, critical path, widest level and largest message."""
    workflow = load(file)
    compiled = compile_workflow(workflow, base_policy(get_settings().defaults))
    analysis = report(compiled)
    celery_size = canvas_bytes(to_celery(compiled))
    if as_json:
        data = analysis.model_dump(mode="json")
        data["plain_celery_canvas_bytes"] = celery_size
        out.print(json.dumps(data, indent=2), markup=False, emoji=False)
        return
    out.print(f"workflow      {analysis.workflow} (plan {analysis.plan_id}, {analysis.steps} steps)", markup=False)
    out.print(f"canvas        {analysis.canvas}", markup=False)
    if analysis.runtime_joins:
        for step, waits in analysis.runtime_joins.items():
            out.print(
                f"runtime join  {step} <- {', '.join(waits)} (not series-parallel: a Redis counter joins it)",
                markup=False,
            )
    else:
        out.print("runtime join  none (series-parallel: canvas expresses every edge)", markup=False)
    if analysis.fan_out:
        out.print(
            f"fan-out       {', '.join(analysis.fan_out)} (for_each, dispatched in batches at run time)", markup=False
        )
    out.print(
        f"critical path {' -> '.join(analysis.critical_path)} ({len(analysis.critical_path)} steps)", markup=False
    )
    out.print(
        f"widest level  {analysis.widest_level} steps ({', '.join(analysis.widest_level_steps[:8])}"
        f"{', ...' if analysis.widest_level > 8 else ''})",
        markup=False,
    )
    out.print(
        f"largest msg   {analysis.largest_message_bytes} bytes (messages name a step; size does not grow with the DAG)",
        markup=False,
    )
    out.print(f"plain celery  {celery_size} bytes for the same workflow as one nested Celery canvas", markup=False)


def register(app: typer.Typer) -> None:
    app.command()(validate)
    app.command()(graph)
    app.command()(plan)
