"""The two consoles and the one way an error reaches the user.

Results go to standard output, progress and problems to standard error. No emoji codes and no
markup in what users wrote: what we print holds user data (file paths, messages, outputs), and
rich would turn the `:100:` of `flow.yaml:100:5: ...` into 💯.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from orchestrator.errors import InvalidParams, InvalidWorkflow, OrchestratorError

out = Console(highlight=False, soft_wrap=True, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)


def report_error(exc: OrchestratorError) -> None:
    """Print an error as the user should read it: every problem of a file, each bad param, or the message."""
    if isinstance(exc, InvalidWorkflow):
        for problem in exc.problems:
            err.print(str(problem), markup=False)
        return
    lines = exc.problems if isinstance(exc, InvalidParams) else (str(exc),)
    for line in lines:
        err.print(f"[red]error:[/red] {escape(line)}")


class Commands(TyperGroup):
    """The command group: an :class:`OrchestratorError` from any command is reported and exits with its code."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click.Context, which typer does not export
        try:
            return super().invoke(ctx)
        except OrchestratorError as exc:
            report_error(exc)
            ctx.exit(exc.exit_code)
