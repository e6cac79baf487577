"""Checks across fields of a parsed workflow: the graph, references, schedules and task names.

Every check appends to one list, so a user sees all problems of a file at once.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import croniter
from pydantic import JsonValue

from orchestrator.definition.durations import format_duration
from orchestrator.definition.expressions import parse_expression
from orchestrator.definition.expressions import references as expression_references
from orchestrator.definition.graph import Dag
from orchestrator.definition.models import RESERVED_TASK_PREFIXES, ParamType, Policy, Step, Workflow, is_reserved_task
from orchestrator.definition.params import check_value
from orchestrator.definition.problems import dotted, suggest
from orchestrator.definition.references import (
    Reference,
    iter_strings,
    parse_reference,
    parse_template,
)
from orchestrator.definition.source import SourceMap
from orchestrator.definition.trigger_checks import check_trigger_sections, trigger_tasks
from orchestrator.errors import ExpressionError, Problem, ReferenceSyntaxError

Loc = tuple[str | int, ...]

MIN_EVERY = 1.0
"""The shortest interval of an ``every`` schedule, in seconds: a tick is a whole run."""
SUGGESTION_BUDGET = 200_000
"""How many (unknown name, known name) pairs one file's "did you mean" hints may compare.

Each hint compares a name with every candidate: a file of thousands of steps each needing an
unknown step would take hours. Past the budget, problems are listed without hints."""


class _Checker:
    def __init__(
        self,
        workflow: Workflow,
        source: SourceMap,
        step_names: Collection[str],
        param_names: Collection[str],
    ) -> None:
        self.workflow = workflow
        self.source = source
        self.step_names = set(step_names)
        self.param_names = set(param_names)
        self.problems: list[Problem] = []
        self.dag: Dag | None = None
        self.unresolved_mask = 0
        # Needs that name no parsed step (unknown, or broken): what lies above them is unknown.
        self.unresolved: frozenset[str] = frozenset()
        self.budget = SUGGESTION_BUDGET
        self.hints: dict[tuple[str, str, str], str] = {}

    def suggest(
        self, kind: str, word: str, candidates: Collection[str], *, cutoff: float = 0.6, besides: str = ""
    ) -> str:
        """:func:`~orchestrator.problems.suggest`, remembered per word and within :data:`SUGGESTION_BUDGET`.

        Args:
            kind: What the candidates are (``steps``, ``params``, ...): the key hints are remembered by.
            word: The unknown name.
            candidates: The known names of that kind.
            cutoff: As for :func:`~orchestrator.problems.suggest`.
            besides: A candidate never to suggest (a step is not told to need itself).
        """
        key = (kind, word, besides)
        if key not in self.hints:
            if len(candidates) > self.budget:
                return ""
            self.budget -= len(candidates)
            self.hints[key] = suggest(word, (c for c in candidates if c != besides), cutoff=cutoff)
        return self.hints[key]

    def add(self, loc: Loc, message: str, *, at_key: bool = False) -> None:
        self.problems.append(self.source.problem(loc, message, at_key=at_key))

    # --- graph ---------------------------------------------------------------------------------

    def check_graph(self) -> None:
        steps = self.workflow.steps
        for name, step in steps.items():
            seen: set[str] = set()
            for i, need in enumerate(step.needs):
                loc: Loc = ("steps", name, "needs", i)
                if need == name:
                    self.add(loc, f"step {name!r} needs itself; remove it from its needs")
                elif need in seen:
                    self.add(loc, f"step {name!r} lists {need!r} twice in needs; remove one")
                elif need not in self.step_names:
                    hint = self.suggest("steps", need, self.step_names, besides=name)
                    self.add(loc, f"step {name!r} needs {need!r}, which is not a step{hint}")
                seen.add(need)
        self.unresolved = frozenset(d for s in steps.values() for d in s.needs if d not in steps)
        graph = {n: tuple(d for d in dict.fromkeys(s.needs) if d != n) for n, s in steps.items()}
        dag = Dag({**graph, **{d: () for d in self.unresolved}})
        cycles = dag.cycles()
        for cycle in cycles:
            # Point at the need that closes the cycle: the first node's need on the last node.
            first, last = cycle[0], cycle[-2]
            index = steps[first].needs.index(last) if last in steps[first].needs else 0
            path = " needs ".join(repr(n) for n in reversed(cycle))
            self.add(("steps", first, "needs", index), f"cycle: {path}; remove one of these needs")
        if not cycles:
            self.dag = dag
            self.unresolved_mask = dag.mask(self.unresolved)

    # --- references ----------------------------------------------------------------------------

    def check_steps(self) -> None:
        for name, step in self.workflow.steps.items():
            base: Loc = ("steps", name)
            self._check_for_each(name, step)
            for field in ("args", "idempotency_key"):
                for where, ref in self._references(name, getattr(step, field), (*base, field)):
                    self._check_reference(name, ref, where, allow_item=step.for_each is not None)
            if step.when is not None:
                loc = (*base, "when")
                try:
                    expr = parse_expression(step.when)
                except ExpressionError as exc:
                    self.add(loc, f"step {name!r}: {exc}")
                else:
                    for ref in expression_references(expr):
                        self._check_reference(name, ref, loc, allow_item=False)

    def _check_for_each(self, name: str, step: Step) -> None:
        if step.for_each is None:
            return
        loc: Loc = ("steps", name, "for_each")
        try:
            ref = parse_template(step.for_each).single
        except ReferenceSyntaxError as exc:
            self.add(loc, f"step {name!r}: for_each: {exc}")
            return
        if ref is None or ref.root not in ("steps", "params") or ref.field == "status":
            self.add(
                loc,
                f"step {name!r}: for_each must be one reference to a list, such as "
                f"'${{steps.NAME.output}}' or '${{params.NAME}}'{_wrap_hint(step.for_each)}",
            )
            return
        spec = self.workflow.params.get(str(ref.name)) if ref.root == "params" and not ref.path else None
        if spec is not None and spec.type is not ParamType.ARRAY:
            self.add(
                loc,
                f"step {name!r}: for_each over {_shown(ref)}, a {spec.type.value} param; for_each needs a list: "
                "declare the param with type: array",
            )
            return
        self._check_reference(name, ref, loc, allow_item=False)

    def _references(self, name: str, value: object, loc: Loc) -> Iterator[tuple[Loc, Reference]]:
        """Every reference in ``value``; a malformed string is reported once, at its own place."""
        for where, text in iter_strings(value):
            try:
                references = parse_template(text).references
            except ReferenceSyntaxError as exc:
                self.add((*loc, *where), f"step {name!r}: {exc}")
                continue
            for ref in references:
                yield (*loc, *where), ref

    def _check_reference(self, name: str, ref: Reference, loc: Loc, *, allow_item: bool) -> None:
        if ref.root == "item" and not allow_item:
            self.add(loc, f"step {name!r}: {_shown(ref)} is only defined in the args of a for_each step")
        elif ref.root == "params" and ref.name not in self.param_names:
            hint = self.suggest("params", str(ref.name), self.param_names) or "; declare it under params"
            self.add(loc, f"step {name!r}: {_shown(ref)} names no declared param{hint}")
        elif ref.root == "steps":
            self._check_step_reference(name, ref, loc)
        elif ref.root in ("event", "check"):
            section = "webhook" if ref.root == "event" else "sensor"
            self.add(
                loc,
                f"step {name!r}: {_shown(ref)} is only defined in the {section}: section; "
                f"pass it to the run as a param there and use ${{params.NAME}} here",
            )

    def _check_step_reference(self, name: str, ref: Reference, loc: Loc) -> None:
        target = str(ref.name)
        if target not in self.step_names:
            hint = self.suggest("steps", target, self.step_names)
            self.add(loc, f"step {name!r}: {_shown(ref)} names no step{hint}")
            return
        if target == name:
            self.add(
                loc,
                f"step {name!r}: {_shown(ref)} refers to the step itself; a step cannot use its own "
                f"{ref.field}: refer to a step it needs",
            )
            return
        dag = self.dag
        if dag is None:
            return  # a cycle: "upstream" means nothing until it is broken
        upstream = dag.ancestor_mask(name)
        # Above an unknown or broken need anything may be upstream: say nothing rather than guess.
        if not (target in dag.position and dag.is_ancestor(target, name)) and not upstream & self.unresolved_mask:
            self.add(
                loc,
                f"step {name!r}: {_shown(ref)} refers to {target!r}, which is not upstream of {name!r}; "
                f"add {target!r} to its needs",
            )

    # --- params, schedules, hooks, tasks ---------------------------------------------------------

    def check_params(self) -> None:
        for name, spec in self.workflow.params.items():
            if not spec.required and spec.default is not None:
                problem = check_value(name, spec, spec.default)
                if problem:
                    self.add(("params", name, "default"), f"default of {problem}")
            for bound in ("minimum", "maximum"):
                if getattr(spec, bound) is not None and spec.type.value not in ("integer", "number"):
                    self.add(
                        ("params", name, bound),
                        f"param {name!r}: {bound} applies to integer and number params only, "
                        f"not {spec.type.value}; remove it",
                    )
            if spec.minimum is not None and spec.maximum is not None and spec.minimum > spec.maximum:
                self.add(
                    ("params", name, "maximum"),
                    f"param {name!r}: maximum {spec.maximum:g} is less than minimum {spec.minimum:g}, "
                    "so no value is allowed; swap them",
                )

    def check_time_limits(self) -> None:
        policies: list[tuple[Loc, Policy]] = [(("defaults",), self.workflow.defaults)]
        policies += [(("steps", name), step.policy) for name, step in self.workflow.steps.items()]
        for loc, policy in policies:
            for field in ("timeout", "soft_timeout"):
                if getattr(policy, field) == 0:
                    self.add(
                        (*loc, field),
                        f"{dotted((*loc, field))}: 0s is not a time limit; give a positive duration "
                        "such as 30s, or leave it out to inherit one",
                    )

    def check_schedules(self) -> None:
        names: dict[str, int] = {}
        for i, entry in enumerate(self.workflow.schedule):
            loc: Loc = ("schedule", i)
            where = f"schedule[{i}]"
            self._check_schedule_name(i, entry.effective_name, entry.name is not None, names)
            if "catchup_limit" in entry.model_fields_set and not entry.catchup:
                self.add(
                    (*loc, "catchup_limit"),
                    f"{where}: catchup_limit applies only with `catchup: true`; set catchup or remove it",
                )
            if entry.cron is not None and entry.every is not None:
                self.add(loc, f"{where}: has both `cron` and `every`; keep one of them")
            elif entry.cron is None and entry.every is None:
                self.add(loc, f"{where}: needs `cron` (such as '0 1 * * *') or `every` (such as 1h)")
            if entry.every is not None and entry.every < MIN_EVERY:
                self.add(
                    (*loc, "every"),
                    f"{where}: every {format_duration(entry.every)} is more often than a schedule may tick; "
                    f"the shortest interval is {format_duration(MIN_EVERY)}",
                )
            if entry.cron is not None and (problem := cron_problem(entry.cron)):
                self.add((*loc, "cron"), f"{where}: {problem}")
            if not _is_time_zone(entry.timezone):
                hint = self.suggest("zones", entry.timezone, _time_zones())
                hint = hint or "; use an IANA name such as 'Europe/Paris'"
                self.add((*loc, "timezone"), f"{where}: unknown time zone {entry.timezone!r}{hint}")
            self._check_schedule_params(i, entry.params)

    def _check_schedule_name(self, index: int, name: str, explicit: bool, seen: dict[str, int]) -> None:
        """Names key a schedule's state and its runs' ``started_by``: two entries may not share one."""
        if name in seen:
            loc: Loc = ("schedule", index, "name") if explicit else ("schedule", index)
            named = f"is named {name!r}" if explicit else f"is named {name!r} by default (its cron or interval)"
            self.add(
                loc,
                f"schedule[{index}]: {named}, as schedule[{seen[name]}] is; give each entry a distinct `name`",
            )
        else:
            seen[name] = index

    def _check_schedule_params(self, index: int, values: dict[str, JsonValue]) -> None:
        self.check_run_params(("schedule", index, "params"), f"schedule[{index}]", values)

    def check_run_params(self, loc: Loc, where: str, values: dict[str, JsonValue], *, templated: bool = False) -> None:
        """Params a trigger passes to its runs: declared, of their types, every required one set.

        With ``templated`` (a webhook's, a sensor's), a value with a ``${...}`` reference is known
        only when it fires: its type is checked then.
        """
        for key, value in values.items():
            spec = self.workflow.params.get(key)
            if key not in self.param_names:
                hint = self.suggest("params", key, self.param_names) or "; declare it under params"
                self.add((*loc, key), f"{where}: param {key!r} is not declared{hint}", at_key=True)
            elif (
                spec is not None
                and not (templated and _has_reference(value))
                and (problem := check_value(key, spec, value))
            ):
                self.add((*loc, key), f"{where}: {problem}")
        for key, spec in self.workflow.params.items():
            if spec.required and key not in values:
                self.add(
                    loc,
                    f"{where}: required param {key!r} is not set; set it under this entry's params "
                    "or give the param a default",
                )

    def named_tasks(self) -> list[tuple[Loc, str]]:
        named: list[tuple[Loc, str]] = [(("steps", n, "task"), s.task) for n, s in self.workflow.steps.items()]
        for hook in ("on_failure", "on_success"):
            if (spec := getattr(self.workflow, hook)) is not None:
                named.append(((hook, "task"), spec.task))
        named.extend(trigger_tasks(self.workflow))
        return named

    def check_reserved_tasks(self) -> None:
        for loc, task in self.named_tasks():
            if is_reserved_task(task):
                self.add(
                    loc,
                    f"task {task!r} is the orchestrator's or Celery's own; a step runs your tasks, "
                    f"not names starting with {' or '.join(repr(p) for p in RESERVED_TASK_PREFIXES)}",
                )

    def check_tasks(self, tasks: Collection[str]) -> None:
        known = {t for t in tasks if not is_reserved_task(t)}
        for loc, task in self.named_tasks():
            if task not in known and not is_reserved_task(task):
                hint = self.suggest("tasks", task, known, cutoff=0.8)
                hint = hint or "; check the name, or list its module in ORCH_TASK_MODULES"
                self.add(loc, f"unknown task {task!r}: no worker module registers it{hint}")


def check_workflow(
    workflow: Workflow,
    source: SourceMap,
    *,
    tasks: Collection[str] | None = None,
    step_names: Collection[str] | None = None,
    param_names: Collection[str] | None = None,
) -> list[Problem]:
    """Every cross-field problem of a structurally valid workflow.

    Args:
        workflow: The parsed workflow (possibly partial when some steps did not parse).
        source: Positions for messages.
        tasks: Registered task names; unknown names are reported only when this is given.
        step_names: Every step name in the file, including steps that failed to parse, so that
            a broken step is not also reported as unknown where it is needed.
        param_names: Every param name in the file, including params that failed to parse, for
            the same reason.
    """
    checker = _Checker(
        workflow,
        source,
        step_names if step_names is not None else workflow.steps,
        param_names if param_names is not None else workflow.params,
    )
    checker.check_graph()
    checker.check_steps()
    checker.check_params()
    checker.check_time_limits()
    checker.check_schedules()
    check_trigger_sections(checker)
    checker.check_reserved_tasks()
    if tasks is not None:
        checker.check_tasks(tasks)
    return checker.problems


_CRON_FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of month", "1-31"),
    ("month", "1-12 or jan-dec"),
    ("day of week", "0-6 or sun-sat"),
)


def cron_problem(expression: str) -> str | None:
    """What is wrong with a cron expression, naming the bad field, or None if it is valid.

    Five fields, as celery beat's ``crontab`` takes them; ``@daily``-style aliases pass as well.
    """
    if expression.startswith("@"):
        return None if croniter.is_valid(expression) else f"cron {expression!r} is not a known alias"
    fields = expression.split()
    if len(fields) != len(_CRON_FIELDS):
        return (
            f"cron {expression!r} has {len(fields)} fields; write 5: minute hour day-of-month month "
            "day-of-week, such as '0 1 * * *'"
        )
    for i, (name, allowed) in enumerate(_CRON_FIELDS):
        probe = " ".join(field if j == i else "*" for j, field in enumerate(fields))
        if not croniter.is_valid(probe):
            return f"cron {expression!r}: the {name} field {fields[i]!r} is not valid ({allowed})"
    if not croniter.is_valid(expression):
        return f"cron {expression!r} is not a valid cron expression"
    return None


def _is_time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory such as 'Europe'
        return False
    return True


@cache
def _time_zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _has_reference(value: JsonValue) -> bool:
    return any("${" in text for _, text in iter_strings(value))


def _shown(ref: Reference) -> str:
    """A reference for a message: as written, or its start when it is longer than a line should be."""
    text = str(ref)
    return text if len(text) <= 80 else text[:76] + "...}"


def _wrap_hint(text: str) -> str:
    """``"; did you mean '${steps.a.output}'?"`` when the text is a reference without ``${}``."""
    try:
        ref = parse_reference(text)
    except ReferenceSyntaxError:
        return ""
    return f"; did you mean '{ref}'?" if ref.root in ("steps", "params") else ""
