"""``history migrate | downgrade | export | status``: the durable run history in PostgreSQL (ORCH_HISTORY_URL)."""

from __future__ import annotations

import json
import signal
import threading
import time
from types import FrameType
from typing import Annotated

import typer

from config import Settings, get_settings
from orchestrator.cli.console import err, out
from orchestrator.errors import ConfigurationError
from orchestrator.history import Batch, Exporter
from orchestrator.services import open_history, services
from orchestrator.store.archive import RedisArchive

commands = typer.Typer(
    help="The durable run history in PostgreSQL (ORCH_HISTORY_URL): schema, export, status.", no_args_is_help=True
)


def _configured() -> Settings:
    settings = get_settings()
    if settings.history_url is None:
        raise ConfigurationError("set ORCH_HISTORY_URL=postgresql://USER:PASSWORD@HOST/DB to keep run history")
    return settings


@commands.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="The revision to upgrade to.")] = "head",
) -> None:
    """Upgrade the history's schema (Alembic migrations packaged with orchestrator)."""
    from orchestrator.history import schema

    with open_history(_configured()) as history:
        assert history is not None
        before, after = schema.upgrade(history.engine, revision)
        where = history.where
    if before == after:
        out.print(f"history schema at {where}: {after or 'empty'}, nothing to do", markup=False)
    else:
        out.print(f"history schema at {where}: {before or 'empty'} -> {after}", markup=False)


@commands.command()
def downgrade(
    revision: Annotated[str, typer.Argument(help="The revision to go back to; `base` drops every table.")],
) -> None:
    """Downgrade the history's schema (`base` drops the tables and everything in them)."""
    from orchestrator.history import schema

    with open_history(_configured()) as history:
        assert history is not None
        before, after = schema.downgrade(history.engine, revision)
        where = history.where
    out.print(f"history schema at {where}: {before or 'empty'} -> {after or 'empty'}", markup=False)


@commands.command()
def export(
    once: Annotated[bool, typer.Option("--once", help="Export what is waiting now, then exit.")] = False,
) -> None:
    """Write finished runs to the history: until SIGTERM or Ctrl-C, or with --once until none waits.

    One exporter works at a time (a lock in Redis); `orchestrator api` runs one too unless
    ORCH_HISTORY__EXPORT_IN_API=false. Checks or upgrades the schema first (ORCH_HISTORY__MIGRATE).
    """
    settings = _configured()
    with services(settings) as svc:
        assert svc.history is not None
        svc.history.ensure_schema(settings.history.migrate)
        exporter = svc.exporter()
        if once:
            if not _wait_for_lock(svc.store.archive, exporter):
                holder = svc.store.archive.holder()
                err.print(f"another exporter is working ({holder}); it exports what waits", markup=False)
                return
            try:
                total = exporter.drain()
            finally:
                svc.store.archive.release(exporter.owner)
            _report(total)
            return
        stop = threading.Event()

        def stopping(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, stopping)
        signal.signal(signal.SIGINT, stopping)
        err.print(f"exporting finished runs to {svc.history.where} (SIGTERM or Ctrl-C stops)", markup=False)
        exporter.run(stop, settings.history.poll_interval)


def _wait_for_lock(archive: RedisArchive, exporter: Exporter) -> bool:
    """Take the exporter's lock, waiting out a dead exporter's (it expires after ORCH_HISTORY__LOCK_SECONDS)."""
    deadline = time.monotonic() + exporter.lock_seconds + 1
    while not archive.hold(exporter.owner, exporter.lock_seconds):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def _report(total: Batch) -> None:
    already = total.read - total.written - total.deferred - total.gone - total.unfinished
    parts = [f"{total.written} written", f"{already} there already"]
    parts += [f"{total.gone} gone from Redis before export (see the log)"] if total.gone else []
    parts += [f"{total.unfinished} running again (retried)"] if total.unfinished else []
    parts += [f"{total.deferred} refused (tried again later, see the log)"] if total.deferred else []
    out.print(f"exported {total.read} finished runs: {', '.join(parts)}", markup=False)


@commands.command()
def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The schema revision, and how many finished runs wait for the exporter."""
    from orchestrator.history import schema

    settings = _configured()
    with services(settings) as svc:
        assert svc.history is not None
        found = {
            "database": svc.history.where,
            "revision": schema.current(svc.history.engine),
            "needed": schema.head(),
            "waiting": svc.store.archive.size(),
            "exporter": svc.store.archive.holder(),
        }
    if as_json:
        out.print(json.dumps(found, indent=2), markup=False)
        return
    for key, value in found.items():
        out.print(f"{key}: {value if value is not None else '-'}", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(commands, name="history")
