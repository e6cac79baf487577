"""Resolving ``${...}`` references of one step against a run's params and upstream outputs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.definition.expressions import parse_expression
from orchestrator.definition.expressions import references as expression_references
from orchestrator.definition.models import Step
from orchestrator.definition.references import Reference, find_references, follow, parse_template
from orchestrator.errors import MissingValue

_MISSING = object()


@dataclass(frozen=True)
class RunContext:
    """The values references of one step can name.

    Attributes:
        run_id: ``${run.id}``.
        run_date: ``${run.date}``, the run's creation date (YYYY-MM-DD, UTC).
        workflow: ``${run.workflow}``.
        params: ``${params.X}``.
        outputs: Outputs of the upstream steps the step refers to.
        statuses: Final statuses of those steps, for ``${steps.X.status}``.
        item: ``${item}`` inside a ``for_each`` step, else absent.
    """

    run_id: str
    run_date: str
    workflow: str
    params: Mapping[str, Any]
    outputs: Mapping[str, Any] = field(default_factory=dict)
    statuses: Mapping[str, str] = field(default_factory=dict)
    item: Any = _MISSING

    def resolve(self, ref: Reference) -> Any:
        """The value a reference names, walked along its path.

        Raises:
            MissingValue: the value does not exist in this run.
        """
        if ref.root == "run":
            base: Any = {"id": self.run_id, "date": self.run_date, "workflow": self.workflow}[str(ref.name)]
        elif ref.root == "params":
            base = self.params.get(str(ref.name))
        elif ref.root == "item":
            if self.item is _MISSING:
                raise MissingValue(f"{ref} is only defined inside a for_each step")
            base = self.item
        elif ref.field == "status":
            base = self.statuses.get(str(ref.name), "pending")
        else:
            base = self.outputs.get(str(ref.name))
        try:
            return follow(base, ref.path, ref)
        except LookupError as exc:
            raise MissingValue(str(exc)) from None

    def with_item(self, item: Any) -> RunContext:
        return RunContext(self.run_id, self.run_date, self.workflow, self.params, self.outputs, self.statuses, item)


def referenced_steps(step: Step, *, for_each: bool = True) -> tuple[set[str], set[str]]:
    """Steps whose outputs, and steps whose statuses, a step's args/when/key/for_each name.

    Args:
        step: The step.
        for_each: Count the ``for_each`` expression; an item's execution does not evaluate it.
    """
    return _split(_references(step, for_each=for_each))


def reads_params(step: Step, *, for_each: bool = True) -> bool:
    """Whether the step's args/when/key (and ``for_each``, if counted) name ``${params...}``."""
    return any(ref.root == "params" for ref in _references(step, for_each=for_each))


def _references(step: Step, *, for_each: bool) -> list[Reference]:
    refs: list[Reference] = [ref for _, ref in find_references(step.args)]
    for text in (step.idempotency_key, step.for_each if for_each else None):
        if text is not None:
            refs.extend(parse_template(text).references)
    if step.when is not None:
        refs.extend(expression_references(parse_expression(step.when)))
    return refs


def _split(refs: Iterable[Reference]) -> tuple[set[str], set[str]]:
    outputs = {str(r.name) for r in refs if r.root == "steps" and r.field == "output"}
    statuses = {str(r.name) for r in refs if r.root == "steps" and r.field == "status"}
    return outputs, statuses
