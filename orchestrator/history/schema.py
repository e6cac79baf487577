"""The history's schema version: Alembic's upgrade, downgrade and check, run in code (no ``alembic.ini``).

The migrations are packaged in ``orchestrator/history/migrations``. An upgrade runs in one
transaction holding a PostgreSQL advisory lock, so API processes starting together migrate once
and the others wait, then find the schema current.
"""

from __future__ import annotations

from typing import Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from orchestrator.errors import ConfigurationError
from orchestrator.history.database import translate, where

SCRIPTS = "orchestrator.history:migrations"
LOCK = "orchestrator-history-schema"
"""The advisory lock an upgrade or downgrade holds (``pg_advisory_xact_lock(hashtext(LOCK))``)."""


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", SCRIPTS)
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head() -> str:
    """The revision this version of the code needs."""
    found = ScriptDirectory.from_config(_config()).get_current_head()
    assert found is not None
    return found


def revisions() -> list[str]:
    """Every revision, oldest first."""
    scripts = ScriptDirectory.from_config(_config())
    return [r.revision for r in reversed(list(scripts.walk_revisions()))]


def current(engine: Engine) -> str | None:
    """The revision the database is at (None: no schema yet).

    Raises:
        ServiceUnavailable: the database cannot be reached.
    """
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except DBAPIError as exc:
        raise translate(exc, engine.url) from exc


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Upgrade the schema to ``revision``; returns the revisions before and after."""
    return _migrate(engine, "upgrade", revision)


def downgrade(engine: Engine, revision: str) -> tuple[str | None, str | None]:
    """Downgrade the schema to ``revision`` (``base``: no tables); returns the revisions before and after."""
    return _migrate(engine, "downgrade", revision)


def _migrate(engine: Engine, way: Literal["upgrade", "downgrade"], revision: str) -> tuple[str | None, str | None]:
    known = {"head", "base", *revisions()}
    if revision not in known:
        raise ConfigurationError(f"no schema revision {revision!r}; the revisions are {', '.join(revisions())}")
    try:
        with engine.begin() as connection:
            connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:lock))"), {"lock": LOCK})
            before = MigrationContext.configure(connection).get_current_revision()
            (command.upgrade if way == "upgrade" else command.downgrade)(_config(connection), revision)
            after = MigrationContext.configure(connection).get_current_revision()
    except DBAPIError as exc:
        raise translate(exc, engine.url) from exc
    return before, after


def ensure(engine: Engine, mode: Literal["auto", "check"]) -> str:
    """Make sure the schema is this version's before a process starts on it; returns the revision.

    Args:
        mode: ``auto`` upgrades it; ``check`` only looks.

    Raises:
        ConfigurationError: with ``check``, the schema is not this version's (the message says what to run);
            or the database is at a revision this version does not know (a newer version migrated it).
        ServiceUnavailable: the database cannot be reached.
    """
    at = current(engine)
    wanted = head()
    if at == wanted:
        return wanted
    if at is not None and at not in revisions():
        raise ConfigurationError(
            f"the history database {where(engine.url)} is at schema revision {at}, which this version does not "
            f"know (it needs {wanted}); a newer version migrated it: upgrade this one"
        )
    if mode == "check":
        shown = "has no schema yet" if at is None else f"is at schema revision {at}"
        raise ConfigurationError(
            f"the history database {where(engine.url)} {shown}; this version needs {wanted}: run "
            "`orchestrator history migrate` (or set ORCH_HISTORY__MIGRATE=auto)"
        )
    upgrade(engine)
    return wanted
