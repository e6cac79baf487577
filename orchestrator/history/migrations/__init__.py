"""Alembic migrations of the history schema, oldest first (``versions/``), run by ``orchestrator history migrate``."""
