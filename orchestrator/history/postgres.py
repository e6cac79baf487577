"""The history on PostgreSQL, opened from ``ORCH_HISTORY_URL``: its engine, reader and writer together.

Imported only when the history is configured (SQLAlchemy and psycopg are not imported otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Engine

from orchestrator.history.database import history_engine, revision, where
from orchestrator.history.models import SCHEMA_REVISION
from orchestrator.history.reader import PostgresHistory
from orchestrator.history.writer import PostgresWriter


@dataclass
class History:
    """The history database: read with :attr:`reader`, written with :attr:`writer`."""

    engine: Engine
    reader: PostgresHistory
    writer: PostgresWriter

    @classmethod
    def open(cls, url: str, *, pool_size: int = 5) -> History:
        """The history at ``url``; nothing connects until it is used.

        Raises:
            ConfigurationError: the URL does not parse.
        """
        engine = history_engine(url, pool_size=pool_size)
        return cls(engine, PostgresHistory(engine), PostgresWriter(engine))

    @property
    def where(self) -> str:
        """``HOST:PORT/DATABASE``, without credentials."""
        return where(self.engine.url)

    def ensure_schema(self, mode: Literal["auto", "check"]) -> str:
        """Check (or, with ``auto``, upgrade) the schema before a process starts on it; its revision.

        Raises:
            ConfigurationError: the schema is not this version's (``check``), or is newer.
            ServiceUnavailable: the database cannot be reached.
        """
        if revision(self.engine) == SCHEMA_REVISION:
            return SCHEMA_REVISION  # current: no need to load Alembic, which takes seconds to import
        from orchestrator.history import schema

        return schema.ensure(self.engine, mode)

    def close(self) -> None:
        self.engine.dispose()
