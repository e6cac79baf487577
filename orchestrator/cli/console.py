"""The two consoles and the one way an error reaches the user.

Results go to standard output, progress and problems to standard error. No emoji codes and no
markup in what users wrote: what we print holds user data (file paths, messages, outputs), and
rich would turn the `:100:` of `flow.yaml:100:5: ...` into 💯. Terminal control sequences in
that data (an error message holding ``ESC[2J``) are shown escaped, as ``--json`` shows them.
"""

from __future__ import annotations

import re
from typing import Any

from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from config import InvalidSettings
from orchestrator.errors import (
    ConfigurationError,
    InvalidParams,
    InvalidWorkflow,
    OrchestratorError,
    ServiceUnavailable,
)
from orchestrator.store.connections import unreachable

out = Console(highlight=False, soft_wrap=True, emoji=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with terminal control characters escaped (``\\x1b``); line breaks and tabs kept."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def report_error(exc: OrchestratorError) -> None:
    """Print an error as the user should read it: every problem of a file, each bad param, or the message."""
    if isinstance(exc, InvalidWorkflow):
        for problem in exc.problems:
            err.print(printable(str(problem)), markup=False)
        return
    lines = exc.problems if isinstance(exc, InvalidParams) else (str(exc),)
    for line in lines:
        err.print(f"[red]error:[/red] {escape(printable(line))}")


class Commands(TyperGroup):
    """The command group: an error from any command is reported in one line and exits with its code.

    :class:`OrchestratorError` carries its exit code; settings that do not load are a
    :class:`ConfigurationError` (each setting named, never its value); a Redis or broker that does
    not answer is :class:`ServiceUnavailable` (exit 3), not a traceback.
    """

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click.Context, which typer does not export
        try:
            return super().invoke(ctx)
        except InvalidSettings as exc:
            failure: OrchestratorError = ConfigurationError("; ".join(exc.problems))
            for problem in exc.problems:
                err.print(f"[red]error:[/red] {escape(printable(problem))}")
        except (RedisConnectionError, RedisTimeoutError) as exc:
            failure = ServiceUnavailable(unreachable("Redis", exc))
            report_error(failure)
        except OperationalError as exc:
            failure = ServiceUnavailable(unreachable("the broker", exc))
            report_error(failure)
        except OrchestratorError as exc:
            failure = exc
            report_error(exc)
        ctx.exit(failure.exit_code)
