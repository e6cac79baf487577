"""``schedules`` and ``backfill``: the workflows' schedules, their state, and runs for past ticks."""

from __future__ import annotations

import getpass
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from orchestrator.cli.console import err, out, printable
from orchestrator.cli.runs import workflow_of
from orchestrator.definition.models import Schedule, Workflow
from orchestrator.engine.records import Trigger
from orchestrator.errors import InvalidArgument, RunNotFound
from orchestrator.services import Services, services
from orchestrator.store.schedules import ScheduleState
from orchestrator.triggers.schedules import describe, next_ticks, submission_key, ticks_between

BACKFILL_MAX = 1000
"""The most ticks one ``backfill`` starts; a longer range is refused (run it in parts)."""
NEXT = 3
"""How many next fire times ``schedules`` shows."""


# --- schedules ------------------------------------------------------------------------------------


def schedules(
    workflow: Annotated[
        str | None, typer.Argument(metavar="[FILE|NAME]", help="Only this workflow (default: ORCH_WORKFLOWS_DIR's).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Only JSON on standard output.")] = False,
) -> None:
    """List every schedule: when it ticks, its policies, next fire times, last tick and run, skips."""
    with services() as svc:
        workflows = [workflow_of(workflow)] if workflow is not None else list(svc.registry().workflows.values())
        pairs = [(w, s) for w in sorted(workflows, key=lambda w: w.name) for s in w.schedule]
        states = svc.store.schedules.states([(w.name, s.effective_name) for w, s in pairs])
        now = datetime.now(UTC)
        rows = [_row(svc, w, s, state, now) for (w, s), state in zip(pairs, states, strict=True)]
    if as_json:
        out.print(json.dumps(rows, indent=2), markup=False, emoji=False)
        return
    if not rows:
        err.print("no schedules: no workflow here has a `schedule:` section")
        return
    table = Table()
    for column in ("workflow", "schedule", "when", "overlap", "catchup", "next", "last tick", "last run", "skipped"):
        table.add_column(column, overflow="fold")
    for row in rows:
        catchup = f"up to {row['catchup_limit']}" if row["catchup"] else "no"
        last_run = f"{row['last_run']} {row['last_run_status']}" if row["last_run"] else ""
        cells: list[str] = [row["workflow"], row["name"], row["when"], row["overlap"], catchup]
        cells += ["\n".join(row["next"]), row["last_tick"] or "", last_run, str(row["skipped"])]
        table.add_row(*(Text(printable(cell)) for cell in cells))
    out.print(table)


def _row(svc: Services, workflow: Workflow, spec: Schedule, state: ScheduleState, now: datetime) -> dict[str, Any]:
    status = None
    if state.last_run is not None:
        try:
            status = svc.coordinator.get(state.last_run).status.value
        except RunNotFound:
            status = "gone"
    return {
        "workflow": workflow.name,
        "name": spec.effective_name,
        "when": describe(spec),
        "cron": spec.cron,
        "every": spec.every,
        "timezone": spec.timezone,
        "overlap": spec.overlap.value,
        "catchup": spec.catchup,
        "catchup_limit": spec.catchup_limit,
        "next": [t.isoformat() for t in next_ticks(spec, now, NEXT)],
        "last_tick": state.tick,
        "last_tick_action": state.action.value if state.action else None,
        "last_run": state.last_run,
        "last_run_status": status,
        "last_skipped": state.last_skipped,
        "started": state.started,
        "skipped": state.skipped,
        "dropped": state.dropped,
    }


# --- backfill -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filled:
    """One tick of a backfill: its run, and whether this backfill started it."""

    tick: datetime
    run_id: str
    created: bool


def backfill(
    target: Annotated[
        str, typer.Argument(metavar="FILE|NAME", help="A workflow file, or a name in ORCH_WORKFLOWS_DIR.")
    ],
    start: Annotated[
        str, typer.Option("--from", help="First moment: ISO-8601 time or date, UTC unless it says (2026-01-31).")
    ],
    end: Annotated[str, typer.Option("--to", help="Last moment, included, in the same forms.")],
    schedule: Annotated[
        str | None, typer.Option("--schedule", help="The schedule's name (needed when there are several).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Only JSON on standard output.")] = False,
) -> None:
    """Start one run per tick of a schedule from --from to --to, each with its tick's ${run.date}.

    Runs are keyed per tick as the schedule's are: a tick that beat or an earlier backfill already
    ran is not run again, so running the same backfill twice starts nothing new.
    """
    first, last = _moment(start, "--from"), _moment(end, "--to")
    if last < first:
        raise InvalidArgument(f"--to {end} is before --from {start}; swap them", "to")
    workflow = workflow_of(target)
    spec = _pick(workflow, schedule)
    name = spec.effective_name
    ticks = ticks_between(spec, first, last, limit=BACKFILL_MAX + 1)
    if len(ticks) > BACKFILL_MAX:
        raise InvalidArgument(
            f"--from {start} --to {end} holds more than {BACKFILL_MAX} ticks of schedule {name!r}; "
            "backfill a shorter range at a time",
            "from",
        )
    filled = _fill(workflow, spec, ticks) if ticks else []
    started = sum(f.created for f in filled)
    if as_json:
        items = [{"tick": f.tick.isoformat(), "run_id": f.run_id, "created": f.created} for f in filled]
        summary = {"workflow": workflow.name, "schedule": name, "started": started, "existing": len(filled) - started}
        out.print(json.dumps({**summary, "runs": items}, indent=2), markup=False, emoji=False)
        return
    for f in filled:
        out.print(f"{f.tick.isoformat()}  {f.run_id}  {'started' if f.created else 'already there'}", markup=False)
    out.print(
        printable(
            f"{workflow.name} / {name}: {len(filled)} tick(s), {started} started, {len(filled) - started} already "
            "there (run before by the schedule or an earlier backfill; not run again)"
        ),
        markup=False,
    )


def _fill(workflow: Workflow, spec: Schedule, ticks: list[datetime]) -> list[Filled]:
    name = spec.effective_name
    by = f"user:{getpass.getuser()}"
    filled: list[Filled] = []
    columns = (TextColumn("backfill {task.description}"), BarColumn(), MofNCompleteColumn())
    with services() as svc:
        if svc.embedded is not None:
            err.print("embedded mode: no worker runs these runs after this command; set ORCH_BROKER_URL")
        with Progress(*columns, console=err, transient=True, disable=not err.is_terminal) as progress:
            task = progress.add_task(printable(f"{workflow.name} / {name}"), total=len(ticks))
            for tick in ticks:
                submitted = svc.coordinator.submit(
                    workflow,
                    spec.params,
                    trigger=Trigger.BACKFILL,
                    started_by=by,
                    idempotency_key=submission_key(name, tick),
                    logical_date=tick.isoformat(),
                )
                filled.append(Filled(tick, submitted.run_id, submitted.created))
                progress.advance(task)
    return filled


def _pick(workflow: Workflow, name: str | None) -> Schedule:
    """The schedule ``--schedule`` names, or the workflow's only one."""
    names = [s.effective_name for s in workflow.schedule]
    if not names:
        raise InvalidArgument(f"workflow {workflow.name!r} has no schedule; add a `schedule:` entry to backfill")
    if name is None:
        if len(names) > 1:
            listed = ", ".join(repr(n) for n in names)
            raise InvalidArgument(
                f"workflow {workflow.name!r} has {len(names)} schedules; pick one with --schedule: {listed}", "schedule"
            )
        return workflow.schedule[0]
    for spec in workflow.schedule:
        if spec.effective_name == name:
            return spec
    listed = ", ".join(repr(n) for n in names)
    raise InvalidArgument(
        f"--schedule {name!r}: workflow {workflow.name!r} has no such schedule; it has {listed}", "schedule"
    )


def _moment(text: str, option: str) -> datetime:
    """An ISO-8601 time or date as an aware datetime (UTC unless it says).

    Raises:
        InvalidArgument: neither, naming the option.
    """
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument(
            f"{option} {text!r} is not a time; write an ISO-8601 time such as 2026-01-31T12:00:00Z or a date "
            "such as 2026-01-31",
            option.lstrip("-"),
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def register(app: typer.Typer) -> None:
    app.command()(schedules)
    app.command()(backfill)
