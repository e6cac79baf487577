"""The tables of the durable history: runs, their steps, their steps' attempts and their events.

SQLAlchemy 2 typed models; the schema itself is made by the Alembic migrations in
``migrations/versions`` (a test checks the two agree). Params, outputs and errors are ``json``,
not ``jsonb``: ``json`` keeps any JSON a task returned, ``\\u0000`` included, which ``jsonb`` refuses.

A run is one row of ``runs``; ``created`` is its score in the hot store's runs index (creation
time, epoch seconds), the key every list sorts by, so a cursor continues from the hot store into
the history. The indexes serve the filters of ``orchestrator runs`` and ``GET /v1/runs``, each
ending in ``(created, run_id)`` so a filtered, newest-first page is one index range read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Double, ForeignKey, Index, Integer, MetaData, Text, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA_REVISION = "0001"
"""The migration these models are (``migrations/versions``); a test checks it is Alembic's head."""

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class RunRow(Base):
    """A finished run, as its record shows it (without steps)."""

    __tablename__ = "runs"

    run_id: Mapped[str] = mapped_column(Text, primary_key=True)
    workflow: Mapped[str] = mapped_column(Text)
    version: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(Text)
    trigger: Mapped[str] = mapped_column(Text)
    started_by: Mapped[str | None] = mapped_column(Text)
    params: Mapped[Any] = mapped_column(JSON)
    created: Mapped[float] = mapped_column(Double)
    """The run's score in the hot store's runs index: what lists sort by."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    logical_date: Mapped[str | None] = mapped_column(Text)
    """As the record gives it (a tick keeps its timezone's offset)."""
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    definition_hash: Mapped[str | None] = mapped_column(Text)
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    """Retries of the run before this record: a later epoch replaces the row."""
    archived_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        Index(None, "created", "run_id"),
        Index(None, "workflow", "created", "run_id"),
        Index(None, "status", "created", "run_id"),
        Index(None, "trigger", "created", "run_id"),
        Index(None, "started_by", "created", "run_id"),
        Index(None, "workflow", "status", "created", "run_id"),
        Index(None, "started_by", "status", "created", "run_id"),
    )


class StepRow(Base):
    """A step of a finished run: its last attempt's state, output and error."""

    __tablename__ = "steps"

    run_id: Mapped[str] = mapped_column(Text, ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    """Its place in the plan (the record lists steps in this order)."""
    status: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    task_id: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    output: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    error: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    items: Mapped[int | None] = mapped_column(Integer)
    items_done: Mapped[int | None] = mapped_column(Integer)


class AttemptRow(Base):
    """One execution of a step, from its ``started`` event to the event that ended it."""

    __tablename__ = "attempts"

    run_id: Mapped[str] = mapped_column(Text, ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True)
    step: Mapped[str] = mapped_column(Text, primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    """1 for the step's first execution, 2 for the next (a deferred attempt runs again under its number)."""
    attempt: Mapped[int | None] = mapped_column(Integer)
    worker: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(Text)
    """``succeeded``, ``failed``, ``retrying``, ``deferred``, ``lost`` (its worker died), ``cancelled``;
    null: not known (the run's history was trimmed, or ended without an event for it)."""
    error: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)


class EventRow(Base):
    """One event of a run's history; its id is the hot store's stream id, ``MS-SEQ``."""

    __tablename__ = "events"

    run_id: Mapped[str] = mapped_column(Text, ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True)
    stream_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    stream_seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    event: Mapped[str] = mapped_column(Text)
    step: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int | None] = mapped_column(Integer)
    worker: Mapped[str | None] = mapped_column(Text)
    by: Mapped[str | None] = mapped_column(Text)
    trigger: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str | None] = mapped_column(Text)
    error: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
