"""Entry point: the typer app; exit codes are :class:`orchestrator.errors.ExitCode`."""

from __future__ import annotations

import typer

from orchestrator.cli import components, deadletters, definitions, history, runs, schedules, sensors, store
from orchestrator.cli.console import Commands

app = typer.Typer(
    name="orchestrator",
    help="Run workflows of Celery tasks: validate, plan, run and watch them.",
    cls=Commands,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
definitions.register(app)
runs.register(app)
components.register(app)
deadletters.register(app)
schedules.register(app)
sensors.register(app)
history.register(app)
store.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
