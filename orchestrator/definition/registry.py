"""Workflows known by name: the files in ``ORCH_WORKFLOWS_DIR``."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from orchestrator.definition.loader import load_file
from orchestrator.definition.models import Workflow
from orchestrator.definition.problems import suggest
from orchestrator.errors import InvalidWorkflow, Problem, WorkflowNotFound

PATTERNS = ("*.yaml", "*.yml", "*.json")


class WorkflowRegistry:
    """Loads every workflow file of a directory; invalid files are kept aside with their problems.

    Args:
        directory: Where the files are (None: no registered workflows).
        tasks: Registered task names, to check ``task:`` names when known.
    """

    def __init__(self, directory: Path | None, tasks: Collection[str] | None = None) -> None:
        self.directory = directory
        self.tasks = tasks
        self.workflows: dict[str, Workflow] = {}
        self.files: dict[str, Path] = {}
        self.invalid: dict[Path, InvalidWorkflow] = {}
        self.stamp = _stamp(directory)
        if directory is None:
            return
        for pattern in PATTERNS:
            for path in sorted(directory.glob(pattern)):
                try:
                    workflow = load_file(path, tasks=tasks)
                except InvalidWorkflow as exc:
                    self.invalid[path] = exc
                    continue
                self.workflows[workflow.workflow] = workflow
                self.files[workflow.workflow] = path
        self.hooks = self._bind_hooks()

    def get(self, name: str) -> Workflow:
        """The workflow called ``name``.

        Raises:
            WorkflowNotFound: with the closest name, or how to register workflows.
        """
        if name in self.workflows:
            return self.workflows[name]
        if self.directory is None:
            raise WorkflowNotFound(f"no workflow {name!r}: give a file path, or set ORCH_WORKFLOWS_DIR")
        raise WorkflowNotFound(f"no workflow {name!r} in {self.directory}{suggest(name, self.workflows)}")

    def bound(self, hook: str) -> tuple[Workflow, ...]:
        """The workflows whose ``webhook:`` section binds ``hook`` (one delivery starts a run of each it fits).

        Raises:
            WorkflowNotFound: no workflow binds it.
        """
        if hook not in self.hooks:
            raise WorkflowNotFound(f"no workflow binds the hook {hook!r}{suggest(hook, self.hooks)}")
        return self.hooks[hook]

    def _bind_hooks(self) -> dict[str, tuple[Workflow, ...]]:
        """Hooks by name. Workflows sharing a hook (each with its own ``when``) must agree on how it is
        signed; a file that disagrees with the first is set aside as invalid."""
        hooks: dict[str, list[Workflow]] = {}
        for name, workflow in list(self.workflows.items()):
            if (hook := workflow.webhook) is None:
                continue
            first = hooks.setdefault(hook.name, [workflow])[0]
            if first is workflow:
                continue
            signed = first.webhook.scheme, first.webhook.secret  # type: ignore[union-attr]
            if signed != (hook.scheme, hook.secret):
                path = self.files.pop(name)
                del self.workflows[name]
                self.invalid[path] = InvalidWorkflow(
                    [
                        Problem(
                            str(path),
                            0,
                            0,
                            f"webhook {hook.name!r} is also bound by workflow {first.workflow!r} "
                            "with another scheme or secret; workflows sharing a hook share how it is signed",
                        )
                    ]
                )
                continue
            hooks[hook.name].append(workflow)
        return {name: tuple(bound) for name, bound in hooks.items()}

    def refreshed(self) -> WorkflowRegistry:
        """This registry, or a new one when a file of the directory was added, removed or changed."""
        return self if _stamp(self.directory) == self.stamp else WorkflowRegistry(self.directory, self.tasks)


def _stamp(directory: Path | None) -> tuple[tuple[str, int, int], ...]:
    """What the directory holds, cheaply: each workflow file's name, change time and size."""
    if directory is None:
        return ()
    found = []
    for pattern in PATTERNS:
        for path in directory.glob(pattern):
            try:
                stat = path.stat()
            except OSError:
                continue
            found.append((path.name, stat.st_mtime_ns, stat.st_size))
    return tuple(sorted(found))
