"""Checking the URLs of the broker and the store when settings load, before anything is written.

A URL that Redis clients would half-accept (``redis://host/notadb`` silently means database 0)
is refused here with what is wrong. Messages never repeat a URL: it may hold a password.
"""

from __future__ import annotations

from urllib.parse import SplitResult, parse_qs, urlsplit

REDIS_SCHEMES = frozenset({"redis", "rediss", "redis+socket", "unix", "sentinel"})
"""URL schemes of a Redis server, as redis-py and kombu spell them (the one list of them)."""
CLUSTER_SCHEMES = frozenset({"redis+cluster", "rediss+cluster"})
"""URL schemes of a Redis Cluster (``redis+cluster://HOST:PORT,HOST:PORT``): the run store may be
one; Celery's broker may not (kombu's Redis transport does not speak the cluster protocol)."""
STORE_SCHEMES = REDIS_SCHEMES | CLUSTER_SCHEMES
AMQP_SCHEMES = frozenset({"amqp", "amqps", "pyamqp"})
"""URL schemes of a RabbitMQ broker."""
BROKER_SCHEMES = REDIS_SCHEMES | AMQP_SCHEMES


def url_scheme(url: str) -> str:
    """The scheme of a URL, lowercase (``""`` when it has none)."""
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep else ""


def _schemes(allowed: frozenset[str]) -> str:
    return ", ".join(f"{s}://" for s in sorted(allowed))


def url_problem(url: str, allowed: frozenset[str]) -> str | None:
    """What is wrong with a broker or store URL, or None; never quoting the URL itself."""
    scheme = url_scheme(url)
    if scheme not in allowed:
        shown = f"scheme {scheme}://" if scheme else "no scheme"
        return f"has {shown}; use one of {_schemes(allowed)}"
    if scheme in ("unix", "redis+socket"):
        return _socket_problem(urlsplit(url.replace("redis+socket://", "unix://", 1)))
    if scheme in CLUSTER_SCHEMES:
        return _cluster_problem(url)
    parts = url.split(";") if scheme == "sentinel" else [url]
    for part in parts:
        if (problem := _host_problem(urlsplit(part.strip()), last=part is parts[-1])) is not None:
            return problem
    return None


def _host_problem(parts: SplitResult, *, last: bool) -> str | None:
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return "has a port that is not a number from 1 to 65535"
    if not parts.hostname:
        return "names no host"
    if not last or url_scheme(parts.geturl()) in AMQP_SCHEMES:
        return None  # an AMQP path is a virtual host; only the last sentinel names the database
    database = parts.path.strip("/")
    if database and not database.isdigit():
        return "has a database that is not a number: write redis://HOST:PORT/NUMBER, such as /0"
    return None


def cluster_nodes(url: str) -> list[tuple[str, int]]:
    """The ``(host, port)`` of each node a ``redis+cluster://`` URL names (port 6379 unless given).

    Raises:
        ValueError: a port is not a number from 1 to 65535.
    """
    hosts = url.split("://", 1)[1].rpartition("@")[2].split("/", 1)[0].split("?", 1)[0]
    nodes = []
    for part in filter(None, (h.strip() for h in hosts.split(","))):
        host, colon, port = part.rpartition(":")
        if not colon:
            host, port = part, "6379"
        if not (port.isdigit() and 0 < int(port) < 65536):
            raise ValueError("has a port that is not a number from 1 to 65535")
        nodes.append((host, int(port)))
    return nodes


def _cluster_problem(url: str) -> str | None:
    try:
        nodes = cluster_nodes(url)
    except ValueError as exc:
        return str(exc)
    if not nodes or not all(host for host, _ in nodes):
        return "names no host: write redis+cluster://HOST:PORT,HOST:PORT (any of the cluster's nodes)"
    database = urlsplit(url.replace(",", "_")).path.strip("/")
    if database not in ("", "0"):
        return "names a database: a Redis Cluster has only database 0"
    return None


def _socket_problem(parts: SplitResult) -> str | None:
    if not parts.path:
        return "names no socket path: write unix:///path/to/redis.sock"
    database = parse_qs(parts.query).get("db", ["0"])[0]
    if not database.isdigit():
        return "has a database (?db=) that is not a number"
    return None


def same_redis(broker_url: str, store_url: str) -> bool:
    """Whether the broker and the run store are one database of one Redis server.

    Then the store may push step messages onto the broker's queues inside its own scripts. A
    unix socket is spelled ``redis+socket://`` by kombu and ``unix://`` by redis-py; host, port
    (6379 unless given) and database (0 unless given) are compared, user and password are not.
    """
    return _server(broker_url) is not None and _server(broker_url) == _server(store_url)


def _server(url: str) -> tuple[str, ...] | None:
    scheme = url_scheme(url)
    if scheme not in REDIS_SCHEMES:
        return None
    if scheme == "sentinel":
        return (scheme, url.rsplit("@", 1)[-1])
    if scheme in ("unix", "redis+socket"):
        parts = urlsplit("unix://" + url.split("://", 1)[1])
        return ("unix", parts.path, parse_qs(parts.query).get("db", ["0"])[0])
    parts = urlsplit(url)
    database = parts.path.strip("/") or parse_qs(parts.query).get("db", ["0"])[0]
    return (scheme, (parts.hostname or "").lower(), str(parts.port or 6379), database)


POSTGRES_SCHEMES = frozenset({"postgresql", "postgres", "postgresql+psycopg"})
"""URL schemes of the history database (PostgreSQL, through psycopg 3)."""


def history_url_problem(url: str) -> str | None:
    """What is wrong with ``ORCH_HISTORY_URL``, or None; never quoting the URL (it may hold a password).

    A unix socket is ``postgresql:///DBNAME?host=/run/postgresql``: no host in the URL is fine,
    libpq's defaults apply.
    """
    scheme = url_scheme(url)
    if scheme not in POSTGRES_SCHEMES:
        shown = f"scheme {scheme}://" if scheme else "no scheme"
        return f"has {shown}; write postgresql://USER:PASSWORD@HOST:5432/DATABASE"
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return "has a port that is not a number from 1 to 65535"
    if "/" in parts.path.strip("/"):
        return "names a database with a '/' in it: write postgresql://HOST:PORT/DATABASE"
    return None
