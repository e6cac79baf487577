"""Writing finished runs to the history: a batch in one transaction, each run once.

Implements :class:`orchestrator.engine.ports.HistoryWriter`. A batch is one transaction: rows of a
run retried since it was written (a lower epoch) are deleted first, then every run is inserted
with ``ON CONFLICT (run_id) DO NOTHING``, and the steps, attempts and events of the runs that
were new. Writing a batch again, after a crash between the commit and the queue's removal, is a
no-op by the primary key. The attempts are read off the events (:func:`attempts_of`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.dialects.postgresql import insert

from orchestrator.engine.ports import ArchivedRun
from orchestrator.engine.records import EventKind, RunEvent
from orchestrator.history.database import all_reachable
from orchestrator.history.models import AttemptRow, EventRow, RunRow, StepRow

ENDINGS = {
    EventKind.SUCCEEDED: "succeeded",
    EventKind.FAILED: "failed",
    EventKind.RETRYING: "retrying",
    EventKind.DEFERRED: "deferred",
    EventKind.RECOVERED: "lost",
    EventKind.CANCELLED: "cancelled",
}
"""The events that end a step's open attempt, and the outcome each gives it."""

REPLACE_OLDER = text(
    "DELETE FROM runs USING unnest(CAST(:ids AS text[]), CAST(:epochs AS integer[])) AS v(run_id, epoch) "
    "WHERE runs.run_id = v.run_id AND runs.epoch < v.epoch"
)


def when(value: str | None) -> datetime | None:
    """An ISO-8601 timestamp of a record as a datetime (None for none, or for one that does not parse)."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class Rows:
    """One run's rows, as the tables take them."""

    run: dict[str, Any]
    steps: list[dict[str, Any]]
    attempts: list[dict[str, Any]]
    events: list[dict[str, Any]]


def rows_of(archived: ArchivedRun) -> Rows:
    """The rows of a finished run (pure)."""
    record = archived.record
    run_id = record.run_id
    created_at = when(record.created_at)
    if created_at is None:
        raise ValueError(f"run {run_id} has no creation time")
    run = {
        "run_id": run_id,
        "workflow": record.workflow,
        "version": record.version,
        "status": record.status.value,
        "trigger": record.trigger.value,
        "started_by": record.started_by,
        "params": record.params,
        "created": archived.created,
        "created_at": created_at,
        "logical_date": record.logical_date,
        "started_at": when(record.started_at),
        "finished_at": when(record.finished_at),
        "definition_hash": record.definition_hash,
        "epoch": archived.epoch,
    }
    steps = [
        {
            "run_id": run_id,
            "name": name,
            "position": position,
            "status": step.status.value,
            "attempts": step.attempts,
            "task_id": step.task_id,
            "worker": step.worker,
            "started_at": when(step.started_at),
            "finished_at": when(step.finished_at),
            "output": step.output,
            "error": step.error.model_dump() if step.error else None,
            "items": step.items,
            "items_done": step.items_done,
        }
        for position, (name, step) in enumerate(record.steps.items())
    ]
    events = []
    for event in archived.events:
        ms, _, seq = event.id.partition("-")
        events.append(
            {
                "run_id": run_id,
                "stream_ms": int(ms),
                "stream_seq": int(seq or 0),
                "at": when(event.at),
                "event": event.event.value,
                "step": event.step,
                "attempt": event.attempt,
                "worker": event.worker,
                "by": event.by,
                "trigger": event.trigger.value if event.trigger else None,
                "status": event.status.value if event.status else None,
                "error": event.error.model_dump() if event.error else None,
            }
        )
    return Rows(run, steps, attempts_of(run_id, archived.events), events)


def attempts_of(run_id: str, events: Sequence[RunEvent]) -> list[dict[str, Any]]:
    """A step's executions, read off its events: each ``started`` opens one, the step's next ending event
    (succeeded, failed, retrying, deferred, recovered, cancelled) closes it with that outcome."""
    open_: dict[str, dict[str, Any]] = {}
    count: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    for event in events:
        if event.step is None:
            continue
        if event.event is EventKind.STARTED:
            if event.step in open_:  # started again with no end recorded between: outcome unknown
                rows.append(open_.pop(event.step))
            count[event.step] += 1
            open_[event.step] = {
                "run_id": run_id,
                "step": event.step,
                "number": count[event.step],
                "attempt": event.attempt,
                "worker": event.worker,
                "started_at": when(event.at),
                "ended_at": None,
                "outcome": None,
                "error": None,
            }
        elif event.event in ENDINGS and event.step in open_:
            row = open_.pop(event.step)
            row.update(
                ended_at=when(event.at),
                outcome=ENDINGS[event.event],
                error=event.error.model_dump() if event.error else None,
            )
            rows.append(row)
    rows.extend(open_.values())
    return rows


@all_reachable
class PostgresWriter:
    """:class:`~orchestrator.engine.ports.HistoryWriter` on PostgreSQL.

    Args:
        engine: The history database's engine (:func:`~orchestrator.history.database.history_engine`).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def write(self, runs: Sequence[ArchivedRun]) -> int:
        """Write the runs in one transaction, each once; returns how many were new (or replaced an older epoch).

        Raises:
            ServiceUnavailable: the database cannot be reached (nothing was written).
        """
        if not runs:
            return 0
        batch = {r.record.run_id: rows_of(r) for r in runs}
        with self.engine.begin() as connection:
            ids = list(batch)
            connection.execute(REPLACE_OLDER, {"ids": ids, "epochs": [batch[i].run["epoch"] for i in ids]})
            new_runs = insert(RunRow).on_conflict_do_nothing(index_elements=["run_id"]).returning(RunRow.run_id)
            written = set(connection.execute(new_runs, [rows.run for rows in batch.values()]).scalars())
            for model, part in ((StepRow, "steps"), (AttemptRow, "attempts"), (EventRow, "events")):
                values = [row for run_id in written for row in getattr(batch[run_id], part)]
                if values:
                    connection.execute(insert(model).on_conflict_do_nothing(), values)
        return len(written)
