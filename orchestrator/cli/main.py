"""Entry point: the typer app and the exit-code contract of SPEC.md.

Exit codes: 0 success (or submitted), 1 a run failed / was cancelled / is unknown, 2 invalid input.
"""

from __future__ import annotations

import sys

import typer

from orchestrator.cli import components, deadletters, definitions, runs
from orchestrator.cli.console import err
from orchestrator.errors import OrchestratorError

app = typer.Typer(
    name="orchestrator",
    help="Run workflows of Celery tasks: validate, plan, run and watch them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
definitions.register(app)
runs.register(app)
components.register(app)
deadletters.register(app)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except OrchestratorError as exc:
        err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        sys.exit(2)
