"""``store stats``: what the run store holds in Redis, by kind of key, and how retention keeps up."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from orchestrator.cli.console import out, printable
from orchestrator.services import services
from orchestrator.store.stats import StoreStats, measure

commands = typer.Typer(help="The run store in Redis: what it holds.", no_args_is_help=True)


@commands.command()
def stats(
    sample: Annotated[
        int,
        typer.Option(
            min=1, max=1_000_000, help="Keys of each kind measured with MEMORY USAGE; the others are estimated."
        ),
    ] = 200,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Keys and bytes per kind of key, runs waiting for retention, and the oldest finished run.

    Scans every key of the namespace (ORCH_KEY_PREFIX): slow on a large store, and meant for operators.
    """
    with services() as svc:
        found = measure(svc.store.redis, svc.store.keys, sample=sample)
    if as_json:
        out.print(json.dumps(found.as_json(), indent=2), markup=False)
        return
    _print(found)


def _print(found: StoreStats) -> None:
    table = Table()
    for column in ("kind", "keys", "bytes"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for name, kind in found.kinds.items():
        table.add_row(Text(name), f"{kind.keys:,}", ("~" if kind.estimated else "") + _size(kind.bytes))
    totals = found.as_json()["total"]
    table.add_row(Text("total"), f"{totals['keys']:,}", _size(totals["bytes"]))
    out.print(table)
    out.print(f"used_memory: {_size(found.used_memory)} (the whole server)", markup=False)
    out.print(
        f"runs: {found.runs:,} listed; {found.finished:,} finished and kept for their retention, {found.due:,} of "
        f"them due for removal; {found.archiving:,} waiting for the history",
        markup=False,
    )
    oldest = found.oldest_finished
    if oldest is None:
        out.print("oldest finished run: none", markup=False)
        return
    removed = datetime.fromtimestamp(oldest.removed_after, UTC).isoformat(timespec="seconds")
    line = (
        f"oldest finished run: {oldest.run_id} ({oldest.workflow}, {oldest.status}), finished {oldest.finished_at}, "
        f"removed after {removed}"
    )
    out.print(printable(line), markup=False)


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def register(app: typer.Typer) -> None:
    app.add_typer(commands, name="store")
