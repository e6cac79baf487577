"""``run``, ``status``, ``runs``, ``cancel`` and ``retry``: commands on runs."""

from __future__ import annotations

import contextlib
import getpass
import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.live import Live
from rich.table import Table
from rich.text import Text

from config import get_settings
from orchestrator.cli.console import err, out, printable
from orchestrator.cli.definitions import known_tasks, load
from orchestrator.definition.durations import InvalidMoment, parse_window
from orchestrator.definition.models import Workflow
from orchestrator.definition.params import coerce_all
from orchestrator.definition.registry import WorkflowRegistry
from orchestrator.dev.inprocess import InProcessWorker
from orchestrator.engine.ports import RunQuery
from orchestrator.engine.records import RunRecord, RunStatus, RunSummary, Trigger
from orchestrator.errors import ExitCode, InvalidArgument, InvalidParams, ServiceUnavailable, WorkflowNotFound
from orchestrator.services import Services, services

LIST_READS = 5
"""Store pages one ``orchestrator runs`` reads at most to fill its list: each examines a bounded number
of runs (``PAGE_SCAN`` per run it returns), so a filter that matches rarely costs the same however
many runs the store holds, and prints the cursor to look further."""

_STYLE = {
    "pending": "dim",
    "queued": "cyan",
    "running": "blue",
    "retrying": "yellow",
    "succeeded": "green",
    "failed": "red",
    "skipped": "dim",
    "cancelled": "magenta",
}


def workflow_of(target: str) -> Workflow:
    """A workflow file, or a workflow of ``ORCH_WORKFLOWS_DIR`` by name.

    Raises:
        InvalidWorkflow: the file (or the file named after the workflow) has problems.
        WorkflowNotFound: no such workflow is registered.
    """
    if not target.strip():
        raise WorkflowNotFound("give a workflow file, or the name of a workflow in ORCH_WORKFLOWS_DIR")
    path = Path(target)
    if path.suffix in (".yaml", ".yml", ".json") or path.exists():
        return load(path)
    registry = WorkflowRegistry(get_settings().workflows_dir, known_tasks())
    try:
        return registry.get(target)
    except WorkflowNotFound as exc:
        # A file named after the workflow that does not load: its problems say more than "no workflow".
        for file, invalid in registry.invalid.items():
            if file.stem == target:
                raise invalid from None
        if registry.invalid:
            skipped = (
                f"; {len(registry.invalid)} invalid file(s) skipped there, check them with `orchestrator validate`"
            )
            raise WorkflowNotFound(f"{exc}{skipped}") from None
        raise


def _params(workflow: Workflow, pairs: list[str]) -> dict[str, object]:
    """``-p KEY=VALUE`` options as typed params; every bad one is reported at once (InvalidParams)."""
    texts: dict[str, str] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise InvalidParams([f"-p {pair!r} must be KEY=VALUE"])
        texts[key] = text
    return coerce_all(workflow.params, texts)


def _table(record: RunRecord) -> Table:
    who = f", {record.trigger.value} by {record.started_by}" if record.started_by else f", {record.trigger.value}"
    title = Text(printable(f"{record.workflow} run {record.run_id}: {record.status.value}{who}"))
    table = Table(title=title, title_justify="left")
    for column in ("step", "status", "attempts", "started", "finished", "output / error"):
        table.add_column(column, overflow="fold")
    for name, step in record.steps.items():
        detail = f"{step.error.type}: {step.error.message}" if step.error else json.dumps(step.output)
        if step.items is not None:
            detail = f"[{step.items_done or 0}/{step.items} items] " + detail
        table.add_row(
            name,
            f"[{_STYLE[step.status.value]}]{step.status.value}[/]",
            str(step.attempts),
            (step.started_at or "")[11:23],
            (step.finished_at or "")[11:23],
            Text(printable(detail if len(detail) < 120 else detail[:117] + "...")),  # Text: no markup, no emoji
        )
    return table


def _follow(svc: Services, run_id: str, timeout: float | None, show: bool) -> RunRecord:
    deadline = None if timeout is None else time.monotonic() + timeout
    record = svc.runs.get(run_id)  # an ended run retention removed is read from the history
    live = Live(_table(record), console=err, refresh_per_second=8, transient=True) if show else None
    with live or contextlib.nullcontext():
        while not record.status.finished:
            if deadline is not None and time.monotonic() > deadline:
                break
            time.sleep(0.1)
            record = svc.coordinator.get(run_id)
            if live is not None:
                live.update(_table(record))
    return record


def _finish(record: RunRecord, as_json: bool) -> None:
    if as_json:
        out.print(record.model_dump_json(indent=2), markup=False, emoji=False)
    else:
        out.print(_table(record))
    if not record.status.finished:
        hint = f"orchestrator status {record.run_id} --watch"
        err.print(f"run {record.run_id} is still {record.status.value}; follow it with `{hint}`")
        raise typer.Exit(ExitCode.RUN_FAILED)
    if record.status is not RunStatus.SUCCEEDED:
        raise typer.Exit(ExitCode.RUN_FAILED)


def run(
    target: Annotated[
        str, typer.Argument(metavar="FILE|NAME", help="A workflow file, or a name in ORCH_WORKFLOWS_DIR.")
    ],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="KEY=VALUE, coerced to the param's type.")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the run and end with its record.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Only JSON on standard output.")] = False,
    timeout: Annotated[float | None, typer.Option(help="Stop waiting after S seconds (exit 1).")] = None,
) -> None:
    """Submit a run; print its id, or with --wait follow it to the end."""
    if timeout is not None and not timeout >= 0:  # also refuses NaN, which would wait forever
        raise typer.BadParameter("must be a number of seconds, 0 or more", param_hint="'--timeout'")
    workflow = workflow_of(target)
    params = _params(workflow, param or [])
    with services() as svc:
        worker = None
        if svc.embedded is not None:
            if not wait:
                err.print("embedded mode: no worker runs after this command; use --wait, or set ORCH_BROKER_URL")
            queues = {s.policy.queue for s in svc.coordinator.compile(workflow).steps.values()}
            worker = InProcessWorker(svc.app, sorted(queues)).start() if wait else None
        try:
            try:
                started_by = f"user:{getpass.getuser()}"
                run_id = svc.coordinator.submit(workflow, params, trigger=Trigger.CLI, started_by=started_by).run_id
            except ServiceUnavailable as exc:
                if exc.run_id is not None:  # recorded: its id is what the caller needs (exit 3 says the rest)
                    out.print(json.dumps({"run_id": exc.run_id}) if as_json else exc.run_id, markup=False)
                raise
            if not wait:
                out.print(json.dumps({"run_id": run_id}) if as_json else run_id, markup=False)
                return
            err.print(f"run {run_id} submitted")
            record = _follow(svc, run_id, timeout, show=err.is_terminal)
        finally:
            if worker is not None:
                worker.stop()
        _finish(record, as_json)


def status(
    run_id: str,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    watch: Annotated[bool, typer.Option("--watch", help="Follow until the run ends.")] = False,
) -> None:
    """Print a run's record."""
    with services() as svc:
        record = _follow(svc, run_id, None, show=err.is_terminal) if watch else svc.runs.get(run_id)
        if as_json:
            out.print(record.model_dump_json(indent=2), markup=False, emoji=False)
        else:
            out.print(_table(record))


def runs(
    workflow: Annotated[str | None, typer.Option(help="Only runs of this workflow.")] = None,
    status: Annotated[RunStatus | None, typer.Option(help="Only runs with this status.")] = None,
    trigger: Annotated[Trigger | None, typer.Option(help="Only runs started this way.")] = None,
    actor: Annotated[
        str | None, typer.Option(help="Only runs started by this actor, exactly (token:svc, user:ana).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only runs created since: an ISO time, or a duration ago (1h).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Only runs created before: an ISO time, or a duration ago (1h).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    after: Annotated[
        str | None, typer.Option(help="Continue a list: the cursor the previous one printed on stderr.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List runs, newest first: the hot store's, then the history's (ORCH_HISTORY_URL)."""
    try:
        start, end = parse_window(since, until, time.time())
    except InvalidMoment as exc:
        raise InvalidArgument(f"--{exc.name}: {exc}", exc.name) from None
    found: list[RunSummary] = []
    cursor = after
    with services() as svc:
        for _ in range(LIST_READS):  # a filter that matches rarely ends with a cursor, not a scan of every run
            if len(found) >= limit:
                break
            query = RunQuery(workflow, status, trigger, start, limit - len(found), cursor, actor, end)
            page = svc.runs.page(query)
            found += page.runs
            cursor = page.next
            if cursor is None:
                break
    if cursor is not None:
        err.print(f"next page: --after {cursor}", markup=False, highlight=False)
    if as_json:
        out.print(json.dumps([r.model_dump(mode="json") for r in found], indent=2), markup=False, emoji=False)
        return
    table = Table()
    for column in ("run id", "workflow", "status", "trigger", "started by", "created", "finished"):
        table.add_column(column)
    for r in found:
        table.add_row(
            r.run_id,
            r.workflow,
            f"[{_STYLE.get(r.status.value, '')}]{r.status.value}[/]",
            r.trigger.value,
            Text(printable(r.started_by or "")),
            r.created_at[:19],
            (r.finished_at or "")[:19],
        )
    out.print(table)


def cancel(run_id: str) -> None:
    """Cancel a run: queued steps are revoked, nothing new is dispatched."""
    _act(run_id, "cancel")


def retry(run_id: str) -> None:
    """Re-run a finished run's failed, cancelled and unfinished steps; succeeded steps keep their outputs."""
    _act(run_id, "retry")


def _act(run_id: str, action: str) -> None:
    with services() as svc:
        by = f"user:{getpass.getuser()}"
        record = svc.coordinator.cancel(run_id, by) if action == "cancel" else svc.coordinator.retry(run_id, by)
    out.print(f"run {record.run_id}: {record.status.value}", markup=False)


def register(app: typer.Typer) -> None:
    for command in (run, status, runs, cancel, retry):
        app.command()(command)
