"""``dead-letters list | replay | drop``: the messages workers refused (undecodable, unknown task)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from orchestrator.cli.console import out, printable
from orchestrator.services import services

commands = typer.Typer(help="Messages workers could not run: list, replay or drop them.", no_args_is_help=True)


@commands.command("list")
def list_(
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List dead letters, newest first."""
    with services() as svc:
        letters = svc.store.dead_letters.list(limit)
    if as_json:
        out.print(json.dumps([letter.model_dump(mode="json") for letter in letters], indent=2), markup=False)
        return
    table = Table()
    for column in ("id", "reason", "task", "queue", "received", "error"):
        table.add_column(column, overflow="fold")
    for letter in letters:
        cells = (letter.id, letter.reason, letter.task or "", letter.queue, letter.received_at[:19], letter.error[:100])
        table.add_row(*(Text(printable(cell)) for cell in cells))  # Text: no markup; printable: no escapes
    out.print(table)


@commands.command()
def replay(letter_id: str) -> None:
    """Publish a dead letter back to its queue (after fixing its cause) and forget it."""
    with services() as svc:
        letter = svc.store.dead_letters.get(letter_id)
        svc.dispatcher.replay(letter)
        svc.store.dead_letters.remove(letter_id)
    out.print(f"replayed {letter.id} to queue {letter.queue}", markup=False)


@commands.command()
def drop(letter_id: str) -> None:
    """Forget a dead letter."""
    with services() as svc:
        svc.store.dead_letters.get(letter_id)  # DeadLetterNotFound for an unknown id
        svc.store.dead_letters.remove(letter_id)
    out.print(f"dropped {letter_id}", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(commands, name="dead-letters")
