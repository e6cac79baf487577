"""The one exception tree of the project.

Every error a user can cause derives from :class:`OrchestratorError`, so callers (the CLI, the
HTTP API) catch one type and print its message. Messages say what to do, not only what failed.

Control flow that is not a failure (a step asking to be retried, a run being cancelled) lives in
:mod:`orchestrator.control` instead, outside this tree, so ``except OrchestratorError`` never
swallows it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class OrchestratorError(Exception):
    """Root of every error this project raises on purpose."""


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


class RunNotFound(RunError):
    """No run with that id exists in the run store."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no run with id {run_id!r}; list runs with `orchestrator runs`")


class RunStateError(RunError):
    """The run is in a state that does not allow the operation (e.g. retrying a running run)."""


# --- tasks -------------------------------------------------------------------------------------


class TaskError(OrchestratorError):
    """A step's task failed in a way the orchestrator itself detected.

    Attributes:
        retryable: Whether the retry policy may try the step again. It belongs to the type:
            subclasses set it, instances do not.
    """

    retryable: bool = False


class UnknownTask(TaskError):
    """The step names a task that no worker registered."""


class MissingValue(TaskError):
    """A reference names a value the run does not have (e.g. a field missing from an output)."""


class NonSerializableOutput(TaskError):
    """A task returned a value that is not JSON; it cannot be passed to other steps."""


class StepTimeout(TaskError):
    """An attempt exceeded its time limit. Retried only if ``TimeoutError`` is in ``retry.on``."""


class WorkerLost(TaskError):
    """The worker running the step died; the step is handed to another worker."""

    retryable = True


# --- configuration -----------------------------------------------------------------------------


class ConfigurationError(OrchestratorError):
    """Settings are inconsistent (e.g. a visibility timeout shorter than the longest step)."""
