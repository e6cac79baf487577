"""Resolving ``${...}`` references of one step: what the step reads from the store, and the values.

:func:`step_reads` says which upstream outputs, statuses and params a step's references name (so a
delivery reads only those, in the same round trip as its claim); :class:`RunContext` resolves the
references against what was read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.definition.expressions import parse_expression
from orchestrator.definition.expressions import references as expression_references
from orchestrator.definition.models import Step
from orchestrator.definition.references import Reference, find_references, follow, parse_template
from orchestrator.errors import MissingValue

_MISSING = object()


@dataclass(frozen=True)
class StepReads:
    """What a step's references need read from the store (upstream outputs, statuses, params, its item)."""

    outputs: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    params: bool = True
    item: bool = False
    """A ``for_each`` item's execution: its input, read with the claim too."""


@dataclass(frozen=True)
class StepInputs:
    """What the store read for a step: run fields, upstream outputs and statuses."""

    workflow: str
    created_at: str
    params_json: str
    outputs: dict[str, Any]
    statuses: dict[str, str]
    logical_date: str | None = None
    """The moment the run is for (a schedule's tick); None: its creation."""
    item_json: str | None = None
    """A ``for_each`` item's input as JSON (None: not an item, or no such item)."""


@dataclass(frozen=True)
class RunContext:
    """The values references of one step can name.

    Attributes:
        run_id: ``${run.id}``.
        run_date: ``${run.date}``: the date of the run's logical date (a schedule's tick, in the
            schedule's time zone), else of its creation (UTC); YYYY-MM-DD.
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

    @classmethod
    def of(cls, run_id: str, inputs: StepInputs) -> RunContext:
        """The context of a step of run ``run_id`` from what the store read for it."""
        return cls(
            run_id=run_id,
            run_date=(inputs.logical_date or inputs.created_at)[:10],
            workflow=inputs.workflow,
            params=json.loads(inputs.params_json),
            outputs=inputs.outputs,
            statuses=inputs.statuses,
        )

    @classmethod
    def of_item(cls, run_id: str, inputs: StepInputs) -> RunContext:
        """The context of a ``for_each`` item: :meth:`of`, with ``${item}`` its input."""
        item = None if inputs.item_json is None else json.loads(inputs.item_json)
        return cls.of(run_id, inputs).with_item(item)

    def with_item(self, item: Any) -> RunContext:
        return RunContext(self.run_id, self.run_date, self.workflow, self.params, self.outputs, self.statuses, item)


def step_reads(step: Step, *, item: bool) -> StepReads:
    """What a step (``item`` False) or one of its ``for_each`` items (True) must read to resolve its references.

    An item's execution does not evaluate ``for_each``: reading its source (an upstream output or
    a param, the whole list) once per item made a fan-out quadratic.
    """
    refs = _references(step, for_each=not item)
    outputs = {str(r.name) for r in refs if r.root == "steps" and r.field == "output"}
    statuses = {str(r.name) for r in refs if r.root == "steps" and r.field == "status"}
    return StepReads(tuple(sorted(outputs)), tuple(sorted(statuses)), any(r.root == "params" for r in refs), item)


def _references(step: Step, *, for_each: bool) -> list[Reference]:
    refs: list[Reference] = [ref for _, ref in find_references(step.args)]
    for text in (step.idempotency_key, step.for_each if for_each else None):
        if text is not None:
            refs.extend(parse_template(text).references)
    if step.when is not None:
        refs.extend(expression_references(parse_expression(step.when)))
    return refs
