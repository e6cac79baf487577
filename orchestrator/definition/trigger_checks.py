"""Checks of the ``webhook:`` and ``sensor:`` sections: their conditions, references and params.

A webhook's ``when`` and ``params`` may refer to the delivery's body (``${event...}``) and nothing
else; a sensor's to its check's output (``${check.output...}``). Params passed on are checked
like a schedule's: declared, of their types where known before the trigger fires, every required
one set.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from pydantic import JsonValue

from orchestrator.definition.durations import format_duration
from orchestrator.definition.expressions import parse_expression
from orchestrator.definition.expressions import references as expression_references
from orchestrator.definition.models import Rearm, Workflow
from orchestrator.definition.references import Reference, iter_strings, parse_template
from orchestrator.errors import ExpressionError, ReferenceSyntaxError

Loc = tuple[str | int, ...]

MIN_SENSOR_EVERY = 1.0
"""The shortest interval between two checks of a sensor, in seconds: each check is a task."""


class Checking(Protocol):
    """What these checks need of the file's checker."""

    workflow: Workflow
    param_names: set[str]

    def add(self, loc: Loc, message: str, *, at_key: bool = False) -> None: ...

    def check_run_params(
        self, loc: Loc, where: str, values: dict[str, JsonValue], *, templated: bool = False
    ) -> None: ...


def check_trigger_sections(checker: Checking) -> None:
    """Append the problems of the workflow's ``webhook:`` and ``sensor:`` sections."""
    workflow = checker.workflow
    if (hook := workflow.webhook) is not None:
        _section(checker, "webhook", "event", hook.when, hook.params)
    if (sensor := workflow.sensor) is not None:
        _section(checker, "sensor", "check", sensor.when, sensor.params)
        if sensor.every < MIN_SENSOR_EVERY:
            checker.add(
                ("sensor", "every"),
                f"sensor: every {format_duration(sensor.every)} is more often than a check may run; "
                f"the shortest interval is {format_duration(MIN_SENSOR_EVERY)}",
            )
        if sensor.cooldown < 0:
            checker.add(("sensor", "cooldown"), "sensor: a cooldown is a duration of 0s or more")
        elif sensor.rearm is Rearm.COOLDOWN and sensor.cooldown == 0:
            checker.add(
                ("sensor", "rearm"),
                "sensor: rearm: cooldown starts a run again while the condition holds, once per cooldown; "
                "give a cooldown (such as 10m), or use rearm: edge",
            )
        if sensor.timeout is not None and sensor.timeout <= 0:
            checker.add(("sensor", "timeout"), "sensor: the check's timeout must be a positive duration")


def _section(checker: Checking, section: str, root: str, when: str | None, params: dict[str, JsonValue]) -> None:
    if when is not None:
        try:
            expr = parse_expression(when)
        except ExpressionError as exc:
            checker.add((section, "when"), f"{section}: when: {exc}")
        else:
            for ref in expression_references(expr):
                _reference(checker, section, root, ref, (section, "when"))
    for where, text in iter_strings(params):
        loc: Loc = (section, "params", *where)
        try:
            refs = parse_template(text).references
        except ReferenceSyntaxError as exc:
            checker.add(loc, f"{section}: {exc}")
            continue
        for ref in refs:
            _reference(checker, section, root, ref, loc)
    checker.check_run_params((section, "params"), section, params, templated=True)


def _reference(checker: Checking, section: str, root: str, ref: Reference, loc: Loc) -> None:
    if ref.root != root:
        example = "${event.record.id}" if root == "event" else "${check.output.percent}"
        checker.add(
            loc,
            f"{section}: {ref} is not known when the {section} fires; it may refer to "
            f"{'the delivery body' if root == 'event' else 'its check output'} only, such as {example}",
        )


def trigger_tasks(workflow: Workflow) -> Collection[tuple[Loc, str]]:
    """The task names the trigger sections run (a sensor's check), for the task-name checks."""
    return [(("sensor", "task"), workflow.sensor.task)] if workflow.sensor is not None else []
