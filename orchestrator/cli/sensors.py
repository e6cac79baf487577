"""``sensors``: every workflow's sensor with its last check, last result and last run."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from orchestrator.cli.console import out, printable
from orchestrator.definition.durations import format_duration
from orchestrator.errors import RunNotFound
from orchestrator.services import Services, services


def sensors(
    workflow: Annotated[str | None, typer.Argument(help="Only this workflow's sensor.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List the sensors of ORCH_WORKFLOWS_DIR: check, interval, condition, last check and result, last run."""
    with services() as svc:
        registry = svc.registry()
        names = [workflow] if workflow else sorted(registry.workflows)
        rows = [_row(svc, registry.get(name).workflow) for name in names if registry.get(name).sensor is not None]
    if as_json:
        out.print(json.dumps(rows, indent=2, default=str), markup=False)
        return
    table = Table()
    for column in ("workflow", "check", "every", "when", "last check", "holds", "result", "last run"):
        table.add_column(column, overflow="fold")
    for row in rows:
        result = row["error"] or row["result"] or ""
        run = f"{row['last_run']} ({row['last_run_status']})" if row["last_run"] else ""
        cells = (
            row["workflow"],
            row["task"],
            format_duration(row["every"]),
            row["when"],
            _moment(row["checked_at"]),
            "" if row["holds"] is None else ("yes" if row["holds"] else "no"),
            result[:80],
            run,
        )
        table.add_row(*(Text(printable(str(cell))) for cell in cells))
    out.print(table)


def _row(svc: Services, name: str) -> dict[str, Any]:
    sensor = svc.registry().get(name).sensor
    assert sensor is not None
    state = svc.store.sensors.state(name)
    status = None
    if state.last_run:
        try:
            status = svc.store.runs.plan_of(state.last_run)[1]
        except RunNotFound:
            status = "expired"
    return {
        "workflow": name,
        "task": sensor.task,
        "every": sensor.every,
        "when": sensor.when,
        "cooldown": sensor.cooldown,
        "rearm": sensor.rearm.value,
        **asdict(state),
        "last_run_status": status,
    }


def _moment(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    return moment.isoformat(timespec="seconds")


def register(app: typer.Typer) -> None:
    app.command()(sensors)
