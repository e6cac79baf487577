"""The unit of work (a step, or one item of a ``for_each`` step) and the message that delivers it.

A :class:`Unit` names the work; its string form ``run|step|item`` is what the leases and the
outbox hold (:meth:`Unit.parse` reads it back). A :class:`StepMessage` is the wire format of the
one task the orchestrator sends, a unit plus the plan and attempt it is for. Messages name a
step; they do not carry the plan, arguments or upstream outputs: workers read those from the run
store. So a message has the same small size whatever the DAG (nested Celery canvases grow with
it, celery#5000), and a redelivered message can be checked against the run state before
anything runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

STEP_TASK = "orchestrator.step"
"""The name of the step task, sent by name (the coordinator never imports the worker package)."""
HEADERS_ESTIMATE = 600
"""Bytes of Celery protocol-2 headers around a body (task name, id, retries, time limits, reprs)."""
DUE_BYTES = len(',"due":1700000000.123')
"""Bytes the dispatcher's ``due`` stamp adds to a body."""


@dataclass(frozen=True, order=True, slots=True)
class Unit:
    """One unit of work: a step of a run, or one item of a ``for_each`` step."""

    run_id: str
    step: str
    item: int | None = None

    def __str__(self) -> str:
        """``run|step|item`` (``run|step|`` for a step): the member naming it in leases and the outbox."""
        return f"{self.run_id}|{self.step}|{'' if self.item is None else self.item}"

    @classmethod
    def parse(cls, member: str) -> Unit:
        """Inverse of ``str(unit)``.

        Raises:
            ValueError: the text is not ``run|step|item``.
        """
        run_id, step, item = member.split("|", 2)
        return cls(run_id, step, int(item) if item else None)

    @property
    def parent(self) -> Unit:
        """The step itself (for an item, the ``for_each`` step it belongs to)."""
        return Unit(self.run_id, self.step) if self.item is not None else self


class StepMessage(BaseModel):
    """Keyword arguments of :data:`STEP_TASK`.

    Attributes:
        run_id: The run.
        plan_id: The run's plan (saves a read per step; plans are immutable).
        step: The step name.
        attempt: Which attempt this message is for (1-based); a stale duplicate is dropped.
        item: For a ``for_each`` step, the index of the item; None for the step itself.
        epoch: How many times the run had been retried when the message was sent: a message
            from before a retry is stale, whatever it names.
        due: When the message was due (epoch seconds): stamped by the dispatcher as it publishes,
            its publish time plus any countdown. The step runner reports the start's dispatch lag
            from it; nothing decides on it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    run_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    plan_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    step: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    attempt: Annotated[int, Field(ge=1)] = 1
    item: Annotated[int, Field(ge=0)] | None = None
    epoch: Annotated[int, Field(ge=0)] = 0
    due: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None

    @classmethod
    def of(cls, unit: Unit, plan_id: str, attempt: int = 1, epoch: int = 0) -> StepMessage:
        # Most messages (a run's roots, a chain's next step) hold the defaults: leaving them to the
        # model spares validating them, 30% of the call. Exactly the defaults: a strict model refuses
        # True or 1.0 for an attempt.
        if unit.item is None and type(attempt) is int and attempt == 1 and type(epoch) is int and epoch == 0:
            return cls(run_id=unit.run_id, plan_id=plan_id, step=unit.step)
        return cls(run_id=unit.run_id, plan_id=plan_id, step=unit.step, attempt=attempt, item=unit.item, epoch=epoch)

    @classmethod
    def of_steps(cls, run_id: str, plan_id: str, steps: Iterable[str], epoch: int = 0) -> list[StepMessage]:
        """The first attempts of steps of one run (a run's roots, the dependents a completion fires),
        validated in one call: half the time of an :meth:`of` each, which is pydantic's per-instance
        ``__init__`` as much as validation (10,000 roots: 15 ms instead of 33)."""
        fields: dict[str, Any] = {"run_id": run_id, "plan_id": plan_id}
        if not (type(epoch) is int and epoch == 0):  # as in :meth:`of`: defaults left to the model
            fields["epoch"] = epoch
        return _MESSAGES.validate_python([{**fields, "step": step} for step in steps])

    def kwargs(self) -> dict[str, Any]:
        """The step task's keyword arguments: the fields, defaults left out."""
        return self.model_dump(exclude_defaults=True)

    @property
    def unit(self) -> Unit:
        return Unit(self.run_id, self.step, self.item)

    def next_attempt(self) -> StepMessage:
        return self.model_copy(update={"attempt": self.attempt + 1})

    def size(self) -> int:
        """Bytes of the whole message: protocol-2 body plus headers (reprs of the kwargs included)."""
        kwargs = json.dumps(self.kwargs(), separators=(",", ":"))
        body = f'[[],{kwargs},{{"callbacks":null,"errbacks":null,"chain":null,"chord":null}}]'
        return len(body) + HEADERS_ESTIMATE + len(kwargs) + (0 if self.due is not None else DUE_BYTES)


_MESSAGES = TypeAdapter(list[StepMessage])
