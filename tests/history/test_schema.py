"""The history's schema: Alembic migrations up and down, the models agreeing with them, the startup check."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from orchestrator.errors import ConfigurationError
from orchestrator.history import schema
from orchestrator.history.database import history_engine
from orchestrator.history.models import Base
from tests.conftest import Postgres

TABLES = {"runs", "steps", "attempts", "events"}


def test_migrations_go_up_and_down(postgres: Postgres) -> None:
    engine = history_engine(postgres.database())
    try:
        assert schema.current(engine) is None
        assert schema.upgrade(engine) == (None, schema.head())
        assert set(inspect(engine).get_table_names()) >= TABLES
        assert schema.upgrade(engine) == (schema.head(), schema.head())  # again: nothing to do
        assert schema.downgrade(engine, "base") == (schema.head(), None)
        assert not TABLES & set(inspect(engine).get_table_names())
        schema.upgrade(engine)
        assert schema.current(engine) == schema.head()
    finally:
        engine.dispose()


def test_the_models_are_what_the_migrations_make(postgres: Postgres) -> None:
    engine = history_engine(postgres.database())
    try:
        schema.upgrade(engine)
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert differences == []
    finally:
        engine.dispose()


def test_check_refuses_a_database_that_is_not_migrated_and_auto_migrates_it(postgres: Postgres) -> None:
    engine = history_engine(postgres.database())
    try:
        with pytest.raises(ConfigurationError, match="run `orchestrator history migrate`"):
            schema.ensure(engine, "check")
        assert schema.ensure(engine, "auto") == schema.head()
        assert schema.ensure(engine, "check") == schema.head()
    finally:
        engine.dispose()


def test_an_unknown_revision_is_refused(postgres: Postgres) -> None:
    engine = history_engine(postgres.database())
    try:
        with pytest.raises(ConfigurationError, match="no schema revision 'nope'"):
            schema.upgrade(engine, "nope")
    finally:
        engine.dispose()


def test_the_models_name_the_head_revision(history_url: str) -> None:
    from orchestrator.history.database import revision
    from orchestrator.history.models import SCHEMA_REVISION

    engine = history_engine(history_url)
    try:
        assert SCHEMA_REVISION == schema.head() == revision(engine) == schema.current(engine)
    finally:
        engine.dispose()
