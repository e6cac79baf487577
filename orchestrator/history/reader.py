"""Reading the history: a run's record, its events, and filtered pages of runs by keyset.

Implements :class:`orchestrator.engine.ports.RunHistory`. Records come back exactly as the hot
store gave them: timestamps in UTC with microseconds, steps in plan order. A page is one query
``ORDER BY created DESC, run_id DESC LIMIT n`` below the cursor's ``(created, run_id)``, which an
index ending in those two columns answers by reading ``n`` entries (``bench/history.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Select, select, tuple_
from sqlalchemy.orm import Session

from orchestrator.engine.ports import Listed, ListKey, RunQuery
from orchestrator.engine.records import (
    EventKind,
    RunEvent,
    RunRecord,
    RunStatus,
    RunSummary,
    StepError,
    StepRecord,
    StepStatus,
    Trigger,
)
from orchestrator.errors import InvalidArgument, RunNotFound
from orchestrator.history.database import all_reachable
from orchestrator.history.models import EventRow, RunRow, StepRow

BIGINT_MAX = 2**63 - 1


def iso(moment: datetime | None) -> str | None:
    """A timestamp as the run record writes it: UTC ISO-8601 with microseconds."""
    return None if moment is None else moment.astimezone(UTC).isoformat(timespec="microseconds")


def summary_of(row: RunRow) -> RunSummary:
    return RunSummary(
        run_id=row.run_id,
        workflow=row.workflow,
        version=row.version,
        status=RunStatus(row.status),
        trigger=Trigger(row.trigger),
        started_by=row.started_by,
        params=row.params or {},
        created_at=iso(row.created_at) or "",
        logical_date=row.logical_date,
        started_at=iso(row.started_at),
        finished_at=iso(row.finished_at),
        definition_hash=row.definition_hash,
    )


def step_of(row: StepRow) -> StepRecord:
    return StepRecord(
        status=StepStatus(row.status),
        attempts=row.attempts,
        task_id=row.task_id,
        worker=row.worker,
        started_at=iso(row.started_at),
        finished_at=iso(row.finished_at),
        output=row.output,
        error=StepError.model_validate(row.error) if row.error else None,
        items=row.items,
        items_done=row.items_done,
    )


def event_of(row: EventRow) -> RunEvent:
    return RunEvent(
        id=f"{row.stream_ms}-{row.stream_seq}",
        at=iso(row.at) or "",
        event=EventKind(row.event),
        step=row.step,
        attempt=row.attempt,
        worker=row.worker,
        by=row.by,
        trigger=Trigger(row.trigger) if row.trigger else None,
        status=RunStatus(row.status) if row.status else None,
        error=StepError.model_validate(row.error) if row.error else None,
    )


def page_query(query: RunQuery) -> Select[RunRow]:
    """The SQL of one page: the filters, the cursor, newest first (pure; the bench explains it)."""
    stmt = select(RunRow)
    filters: list[Any] = []
    if query.workflow is not None:
        filters.append(RunRow.workflow == query.workflow)
    if query.status is not None:
        filters.append(RunRow.status == query.status.value)
    if query.trigger is not None:
        filters.append(RunRow.trigger == query.trigger.value)
    if query.actor is not None:
        filters.append(RunRow.started_by == query.actor)
    if query.since is not None:
        filters.append(RunRow.created >= query.since)
    if query.until is not None:
        filters.append(RunRow.created < query.until)
    if query.after:
        key = ListKey.parse(query.after)
        filters.append(tuple_(RunRow.created, RunRow.run_id) < tuple_(key.score, key.run_id))
    return stmt.where(*filters).order_by(RunRow.created.desc(), RunRow.run_id.desc()).limit(query.limit)


@all_reachable
class PostgresHistory:
    """:class:`~orchestrator.engine.ports.RunHistory` on PostgreSQL.

    Args:
        engine: The history database's engine.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, run_id: str) -> RunRecord:
        """The run's record with its steps.

        Raises:
            RunNotFound: the history has no such run.
        """
        with Session(self.engine) as session:
            row = session.get(RunRow, run_id)
            if row is None:
                raise RunNotFound(run_id)
            steps = session.scalars(select(StepRow).where(StepRow.run_id == run_id).order_by(StepRow.position))
            return RunRecord(**summary_of(row).model_dump(), steps={s.name: step_of(s) for s in steps})

    def listed(self, query: RunQuery) -> list[Listed]:
        """Up to ``query.limit`` matching runs below the cursor, newest first, with their keys."""
        with Session(self.engine) as session:
            rows = session.scalars(page_query(query)).all()
            return [Listed(ListKey(row.created, row.run_id), summary_of(row)) for row in rows]

    def history(self, run_id: str, after: str = "-", limit: int = 1000) -> list[RunEvent]:
        """The run's events after the event id ``after`` (``-``: from the start), oldest first.

        Raises:
            RunNotFound: the history has no such run.
            InvalidArgument: ``after`` is not an event id.
        """
        stmt = select(EventRow).where(EventRow.run_id == run_id)
        if after != "-":
            ms, sep, seq = after.partition("-")
            if not (ms.isdigit() and (not sep or seq.isdigit())):
                raise InvalidArgument(f"{after!r} is not an event id", "after")
            # Past what BIGINT holds (the API allows stream ids up to 2**64): nothing can come after it.
            position = (min(int(ms), BIGINT_MAX), min(int(seq or 0), BIGINT_MAX))
            stmt = stmt.where(tuple_(EventRow.stream_ms, EventRow.stream_seq) > tuple_(*position))
        stmt = stmt.order_by(EventRow.stream_ms, EventRow.stream_seq).limit(limit)
        with Session(self.engine) as session:
            found = session.scalars(stmt).all()
            if not found and session.get(RunRow, run_id) is None:
                raise RunNotFound(run_id)
            return [event_of(row) for row in found]
