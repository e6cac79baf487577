"""Alembic's environment for the history schema: runs on the connection :mod:`orchestrator.history.schema` passes.

There is no ``alembic.ini``: ``orchestrator history migrate`` (or the startup check) builds the
configuration in code, with the connection in ``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic import context

from orchestrator.history.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the history migrations with `orchestrator history migrate`")
context.configure(connection=connection, target_metadata=Base.metadata, transaction_per_migration=False)
with context.begin_transaction():
    context.run_migrations()
