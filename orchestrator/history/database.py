"""Connecting to the history database: the engine for a URL, and its errors as the error tree's.

``postgresql://`` means psycopg 3 here (SQLAlchemy alone would pick psycopg2). A server that does
not answer, refuses the login or has no such database is :class:`~orchestrator.errors.ServiceUnavailable`
naming where it looked (never the password); a schema that is not there yet is a
:class:`~orchestrator.errors.ConfigurationError` that says to run ``orchestrator history migrate``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, OperationalError, ProgrammingError

from orchestrator.errors import ConfigurationError, ServiceUnavailable, on_public_methods

CONNECT_TIMEOUT = 5
"""Seconds to wait for the server to answer a new connection."""
UNDEFINED_TABLE = "42P01"


def history_engine(url: str, *, pool_size: int = 5) -> Engine:
    """An engine (a pool of psycopg connections) for ``ORCH_HISTORY_URL``; nothing connects yet.

    Raises:
        ConfigurationError: the URL does not parse.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigurationError("ORCH_HISTORY_URL is not a URL: write postgresql://USER:PASSWORD@HOST/DB") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(
        parsed,
        pool_size=pool_size,
        pool_pre_ping=True,
        connect_args={"connect_timeout": CONNECT_TIMEOUT, "application_name": "orchestrator"},
    )


def revision(engine: Engine) -> str | None:
    """The schema revision the database is at, read without Alembic (None: no schema yet).

    Raises:
        ServiceUnavailable: the database cannot be reached.
    """
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except ProgrammingError as exc:
        if getattr(exc.orig, "sqlstate", None) == UNDEFINED_TABLE:
            return None
        raise translate(exc, engine.url) from exc
    except DBAPIError as exc:
        raise translate(exc, engine.url) from exc


def where(url: URL) -> str:
    """``HOST:PORT/DATABASE`` of a URL, without user or password."""
    host = url.host or "the local socket"
    port = f":{url.port}" if url.port else ""
    return f"{host}{port}/{url.database or ''}"


def translate(exc: DBAPIError, url: URL) -> Exception:
    """The error tree's error for a driver error of the history database."""
    if isinstance(exc, ProgrammingError) and getattr(exc.orig, "sqlstate", None) == UNDEFINED_TABLE:
        return ConfigurationError(
            f"the history database {where(url)} has no tables yet: run `orchestrator history migrate`"
        )
    if isinstance(exc, OperationalError | InterfaceError):
        first = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
        # libpq: 'connection failed: connection to server at "H", port P failed: FATAL:  <why>'
        reason = first.rsplit(" failed: ", 1)[-1].removeprefix("FATAL:").strip()
        reason = reason[:1].lower() + reason[1:]
        return ServiceUnavailable(
            f"cannot reach the history database (ORCH_HISTORY_URL) at {where(url)}: {_without_secrets(reason, url)}"
        )
    return exc


def _without_secrets(text: str, url: URL) -> str:
    password = url.password
    return text.replace(str(password), "****") if password else text


_Method = TypeVar("_Method", bound=Callable[..., Any])
_Class = TypeVar("_Class", bound=type)


def reachable(method: _Method) -> _Method:
    """A method of a class holding ``self.engine`` whose driver errors surface as the error tree's."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except DBAPIError as exc:
            translated = translate(exc, self.engine.url)
            if translated is exc:
                raise
            raise translated from exc

    return cast(_Method, wrapper)


def all_reachable(cls: _Class) -> _Class:
    """Apply :func:`reachable` to every public method of a class."""
    return on_public_methods(cls, reachable)
