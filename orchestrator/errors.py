"""The one exception tree of the project, its exit codes, and the control-flow exceptions.

Every error a user can cause derives from :class:`OrchestratorError`, so callers (the CLI, later
the HTTP API) catch one type and print its message. Messages say what to do, not only what
failed. Each class carries the CLI's exit code for it (:class:`ExitCode` is the whole table), so
no command decides exit codes on its own.

Errors recorded on a step (:class:`TaskError` and its subclasses) carry ``retryable``: whether the
step's retry policy may try again belongs to the type, as in Temporal's ``non_retryable``.

Control flow that is not a failure lives at the end of this module, outside the tree, so
``except OrchestratorError`` never swallows it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar, TypeVar


class ExitCode(IntEnum):
    """What the ``orchestrator`` command exits with (``docs/cli.md`` shows the same table)."""

    OK = 0
    """Success; a run submitted, or finished ``succeeded``."""
    RUN_FAILED = 1
    """The run failed, was cancelled or did not finish in time, or there is no such run or dead letter."""
    INVALID = 2
    """Invalid input: a workflow file, params, command-line options, settings, or a refused operation."""
    UNAVAILABLE = 3
    """Redis or the broker cannot be reached; nothing was done (or, when said, the run was recorded)."""


class OrchestratorError(Exception):
    """Root of every error this project raises on purpose."""

    exit_code: ClassVar[ExitCode] = ExitCode.INVALID


# --- definitions -------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class Problem:
    """One located problem in a workflow definition.

    Attributes:
        file: The file the problem is in (``<python>`` for definitions built in code).
        line: 1-based line, or 0 when unknown.
        col: 1-based column, or 0 when unknown.
        message: What is wrong and, where possible, how to fix it.
    """

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}:{self.col}: {self.message}"
        return f"{self.file}: {self.message}"


class DefinitionError(OrchestratorError):
    """A workflow definition cannot be used."""


class InvalidWorkflow(DefinitionError):
    """A workflow file has one or more problems; all of them are listed.

    Attributes:
        problems: Every problem found, sorted by position.
    """

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(sorted(set(problems)))
        super().__init__("\n".join(str(p) for p in self.problems))


class WorkflowNotFound(DefinitionError):
    """No workflow of that name is registered."""


class ReferenceSyntaxError(DefinitionError):
    """A ``${...}`` reference or template does not parse; the message says why."""


class ExpressionError(DefinitionError):
    """A ``when`` condition does not parse, or compares values of types it cannot order."""


# --- runs --------------------------------------------------------------------------------------


class RunError(OrchestratorError):
    """A run cannot be submitted or acted on."""


class InvalidParams(RunError):
    """Run parameters do not match the workflow's declared ``params``.

    Attributes:
        problems: One message per bad parameter, each naming it.
    """

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


class InvalidArgument(RunError):
    """An argument of a request is not valid (a cursor, a duration, a filter); ``field`` names it."""

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class RunNotFound(RunError):
    """No run with that id exists in the run store."""

    exit_code = ExitCode.RUN_FAILED

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run with id {run_id!r}; list runs with `orchestrator runs`")


class PlanNotFound(RunError):
    """A run or message names a plan the store does not hold (it was never saved, or was deleted)."""

    exit_code = ExitCode.RUN_FAILED

    def __init__(self, plan_id: str) -> None:
        self.plan_id = plan_id
        super().__init__(f"no plan with id {plan_id!r} in the run store")


class RunStateError(RunError):
    """The run is in a state that does not allow the operation (e.g. retrying a running run)."""


class InvalidMessage(RunError):
    """A step message that cannot belong to any run: malformed, or contradicting the run store.

    The worker dead-letters it with this message as the reason; nothing runs.
    """


class DeadLetterNotFound(RunError):
    """No dead letter with that id."""

    exit_code = ExitCode.RUN_FAILED


# --- access ------------------------------------------------------------------------------------


class AccessError(OrchestratorError):
    """A caller of the HTTP API or a webhook sender is not who may do this."""


class NotAuthenticated(AccessError):
    """No valid credentials: a missing or unknown token, a missing or wrong signature (no hint which)."""


class NotAllowed(AccessError):
    """Valid credentials whose scope does not allow the operation."""


# --- tasks -------------------------------------------------------------------------------------


class TaskError(OrchestratorError):
    """A step's attempt failed in a way the orchestrator itself detected; recorded on the step.

    Attributes:
        retryable: Whether the retry policy may try the step again. It belongs to the type:
            subclasses set it, instances do not. None: the step's ``retry.on`` decides, as for
            any exception a task raises (by the names of the class and its bases).
    """

    retryable: ClassVar[bool | None] = False


class UnknownTask(TaskError):
    """The step names a task that no worker registered."""


class MissingValue(TaskError):
    """A reference names a value the run does not have (e.g. a field missing from an output)."""


class NonSerializableOutput(TaskError):
    """A task returned a value that is not JSON; it cannot be passed to other steps."""


class StepTimeout(TaskError, TimeoutError):
    """An attempt exceeded its time limit. Retried only if ``TimeoutError`` (or ``StepTimeout``) is in ``retry.on``."""

    retryable = None


class WorkerLost(TaskError):
    """The worker running the step died too many times; the step is not run again."""


# --- configuration and services ----------------------------------------------------------------


class ConfigurationError(OrchestratorError):
    """Settings are inconsistent (e.g. a visibility timeout shorter than the longest step)."""


class ServiceUnavailable(OrchestratorError):
    """Redis or the broker cannot be reached.

    Attributes:
        run_id: The run that was recorded before the failure, if any (its id is worth printing:
            the outbox publishes its first steps once the broker is back).
    """

    exit_code = ExitCode.UNAVAILABLE

    def __init__(self, message: str, run_id: str | None = None) -> None:
        self.run_id = run_id
        super().__init__(message)


_Class = TypeVar("_Class", bound=type)


def on_public_methods(cls: _Class, decorator: Callable[[Any], Any]) -> _Class:
    """Apply ``decorator`` to every public method of ``cls``: how the run store and the history wrap
    their methods in the one that turns their client library's errors into this tree's."""
    for name, member in list(vars(cls).items()):
        if callable(member) and not name.startswith("_"):
            setattr(cls, name, decorator(member))
    return cls


# --- control flow (not failures) ---------------------------------------------------------------


class Deferred(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Control flow, not a failure: run this attempt again later without counting it.

    Raised inside a step when it cannot start yet (its idempotency key is held by a live execution
    of another unit); the step runner publishes the same attempt again after ``delay`` seconds, and
    the step shows ``retrying`` with an error of type ``Deferred`` meanwhile.
    """

    def __init__(self, reason: str, delay: float) -> None:
        self.reason = reason
        self.delay = delay
        super().__init__(reason)
