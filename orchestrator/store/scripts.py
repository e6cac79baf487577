"""The Lua scripts that make each state transition atomic, loaded once per Redis client.

Each script in ``lua/`` opens with its key and argument layout and names every slot as a local;
``lua/lib.lua`` (what a status means, lease liveness, counting a dead execution) is prepended to
every script when it is loaded, since Redis scripts cannot include one another.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, TypeVar, cast

from redis import ConnectionPool, Redis
from redis.client import Pipeline
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.typing import EncodableT, KeyT

from orchestrator.store.keys import Keys

LIBRARY = "lib"


@cache
def source(name: str) -> str:
    """The text Redis runs for script ``name``: the shared library, then the script."""
    folder = resources.files("orchestrator.store").joinpath("lua")
    library = folder.joinpath(f"{LIBRARY}.lua").read_text(encoding="utf-8")
    return library + "\n" + folder.joinpath(f"{name}.lua").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Scripts:
    """Registered scripts; each call is one EVALSHA (redis-py falls back to EVAL on NOSCRIPT)."""

    create: Script
    claim: Script
    complete: Script
    retry: Script
    item: Script
    cancel: Script
    idempotency: Script
    recover: Script
    schedule: Script
    sense: Script
    sensed: Script
    expire: Script

    @classmethod
    def register(cls, client: Redis, *, fixed_threads: bool = False) -> Scripts:
        """The scripts on ``client``; with ``fixed_threads``, each thread keeps a connection (``KeptConnection``)."""
        kept = None if isinstance(client, RedisCluster) else KeptConnection.of(client.connection_pool, fixed_threads)
        return cls(**{name: LuaScript(client, source(name), kept) for name in cls.__dataclass_fields__})


class LuaScript(Script):
    """A registered script that, told NOSCRIPT (a restarted or flushed server, a replica just promoted),
    loads itself with :func:`load` and runs once more. On one server (a plain or Sentinel-managed
    client) each call is :func:`pooled`, on a thread that keeps one on the registered client's kept
    connection (``kept``, shared by the scripts of one client); a cluster client routes it by its keys."""

    def __init__(self, client: Redis, script: str, kept: KeptConnection | None = None) -> None:
        super().__init__(client, script)
        self.kept = kept

    def __call__(
        self,
        keys: Sequence[KeyT] | None = None,
        args: Iterable[EncodableT] | None = None,
        client: Redis | RedisCluster | None = None,
    ) -> Any:
        target = cast(Redis, client or self.registered_client)
        keys, args = list(keys or ()), list(args or ())
        if isinstance(target, RedisCluster | Pipeline):  # routed by its keys; queued on the pipeline
            return loaded(target, lambda: target.evalsha(self.sha, len(keys), *keys, *args), self)
        command = ("EVALSHA", self.sha, len(keys), *keys, *args)
        kept = self.kept if target is self.registered_client else None
        return loaded(target, lambda: pooled(target, command, kept), self)


def pooled(client: Redis, command: Sequence[EncodableT], kept: KeptConnection | None = None) -> Any:
    """Send one command on a connection of ``client``'s pool (on the main thread, the one ``kept``
    keeps, when given) and read its reply (not decoded by a response callback: a script's reply is
    what it returned).

    What ``Redis.execute_command`` does, without its per-command observability hooks and event
    dispatch: the connection is checked before it is used, the connection's retry policy (the
    client's; a client made from a URL has none) sends the command again on a fresh connection
    after a connection error, and a connection that failed is closed. About 35,000 instructions a
    call fewer, and on a kept connection no checkout from the pool either; the step path makes two
    of these calls, the claim and the completion (``docs/benchmarks.md``, section 9). What hooks
    into ``execute_command`` does not see them: redis-py's OpenTelemetry metrics, and Sentry's
    Redis spans when tracing is on.
    """
    pool = client.connection_pool
    kept = kept if kept is not None and kept.keeps() else None
    connection = pool.get_connection() if kept is None else kept.get()

    def send() -> Any:
        connection.send_command(*command)  # type: ignore[no-untyped-call] # redis-py's connection is untyped
        return connection.read_response()

    try:
        return connection.retry.call_with_retry(
            send,
            lambda _: connection.disconnect(),  # type: ignore[no-untyped-call]
        )
    except ResponseError:  # the server's whole reply was read: the connection is fine
        raise
    except BaseException:
        if kept is not None:  # a call cut short (a time limit, a signal) may leave its reply unread
            connection.disconnect()  # type: ignore[no-untyped-call]
        raise
    finally:
        if kept is None:
            pool.release(connection)


class KeptConnection:
    """The connection of ``pool`` a thread keeps for the scripts' calls: the main thread's, or each thread's.

    A checkout from redis-py's pool takes its lock, moves the connection between its sets and calls
    its metrics hooks, twice a call (out and back): about a third of what a script call costs the
    step path in Python, which makes two (``docs/benchmarks.md``, section 9). The main thread is
    where a prefork pool process and a ``--pool solo`` worker run every step, one at a time, so it
    checks one out once and keeps it; before each call it pays only what makes a checkout safe: the
    pool still owns it (a Sentinel-managed pool owns none to a master that has been replaced; a
    forked child none of its parent's), it is connected, and one with data waiting or closed by
    the server (Redis restarted, a client timeout, a call cut short) is connected again, as the
    pool's checkout does.

    Other threads check out and release per call: kept connections must not grow with threads
    that come and go (a server's worker threads, which end when idle, would leave theirs checked
    out for good) nor with gevent's and eventlet's greenlets, one per task. Unless the process
    says its threads are a fixed set (``fixed_threads``: a ``--pool threads`` worker, whose
    threads are its concurrency and live as long as it does): then each keeps its own, as many
    connections as the pool would hold at once at full load anyway, and a thread that ends
    anyway (one a task started, an in-process worker's once stopped) gives its connection back
    to the pool as its thread-local state goes. A RESP3 client (client-side caching, maintenance
    notifications: the pool treats their data waiting differently) keeps none.
    """

    def __init__(self, pool: ConnectionPool, fixed_threads: bool = False) -> None:
        self.pool = pool
        self.fixed_threads = fixed_threads
        self._local = threading.local()  # a _Slot on each thread that keeps one

    @classmethod
    def of(cls, pool: ConnectionPool, fixed_threads: bool = False) -> KeptConnection | None:
        """A kept connection of ``pool``, or None for a RESP3 client's."""
        return cls(pool, fixed_threads) if str(pool.connection_kwargs.get("protocol") or 2) == "2" else None

    def keeps(self) -> bool:
        """Whether the calling thread keeps a connection: every thread of a fixed set, else the main
        thread only (by ident: under eventlet's patched ``threading`` a raw greenlet may pass for
        the main thread, never for its ident)."""
        return self.fixed_threads or threading.get_ident() == threading.main_thread().ident

    def get(self) -> Connection:
        """The calling thread's kept connection, ready for a command (raises what connecting raises)."""
        slot: _Slot | None = getattr(self._local, "slot", None)
        if slot is None:
            slot = self._local.slot = _Slot(self.pool)
        connection = slot.box[0]
        if connection is None or connection.pid != os.getpid():  # a forked child never uses its parent's socket
            connection = slot.box[0] = self.pool.get_connection()
        elif not self.pool.owns_connection(connection) or connection.should_reconnect():  # type: ignore[no-untyped-call]
            connection.disconnect()  # type: ignore[no-untyped-call]
        try:
            _ready(connection)
        except BaseException:  # cut short while connecting: never half set up (no AUTH, no SELECT)
            connection.disconnect()  # type: ignore[no-untyped-call]
            raise
        return connection


class _Slot:
    """Where one thread keeps its connection; when the thread ends, its thread-local state and this
    slot with it go, and the connection goes back to the pool it came from."""

    __slots__ = ("box", "__weakref__")

    def __init__(self, pool: ConnectionPool) -> None:
        self.box: list[Connection | None] = [None]
        finalizer = weakref.finalize(self, _give_back, pool, self.box)  # the box, never the slot itself
        finalizer.atexit = False  # at exit, or in a forked child, there is nothing to give back


def _give_back(pool: ConnectionPool, box: list[Connection | None]) -> None:
    connection = box[0]
    if connection is not None and connection.pid == os.getpid():
        pool.release(connection)


def _ready(connection: Connection) -> None:
    """Connect, and connect again if there is data waiting or the server closed it (the pool's check)."""
    try:
        connection.connect()  # type: ignore[no-untyped-call]
        if connection.can_read():
            raise RedisConnectionError("connection has data")
    except (RedisConnectionError, RedisTimeoutError, OSError):
        connection.disconnect()  # type: ignore[no-untyped-call]
        connection.connect()  # type: ignore[no-untyped-call]


def load(client: Redis, *scripts: Script) -> None:
    """``SCRIPT LOAD`` these scripts; on a cluster on every node, replicas too: after a failover the
    client's map of the slots may still name the old master, and the replica promoted in its place
    is the one that runs them."""
    for script in scripts:
        if isinstance(client, RedisCluster):
            client.execute_command("SCRIPT", "LOAD", script.script, target_nodes=RedisCluster.ALL_NODES)
        else:
            client.script_load(script.script)


_Result = TypeVar("_Result")


def queue(pipe: Pipeline, script: Script, keys: Sequence[str], args: Sequence[Any]) -> None:
    """Queue one EVALSHA of ``script`` on a pipeline, as a plain command. A :class:`Script` called on a
    pipeline sends ``SCRIPT EXISTS`` first (a second round trip), and redis-py's cluster pipeline
    refuses its ``evalsha`` method (while it routes the command itself by the script's keys, all
    of one slot). Multi-key commands of one run (MGET, UNLINK) are queued so too: the cluster
    pipeline refuses or does not implement their methods. Run the pipeline through :func:`loaded`."""
    pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)  # type: ignore[no-untyped-call]


LOAD_ATTEMPTS = 3
"""Calls of a script told NOSCRIPT before the error is the caller's: during a cluster failover the
node a call reaches can change between the load and the call once more."""


def loaded(client: Redis, execute: Callable[[], _Result], *scripts: Script) -> _Result:
    """Call ``execute`` (which builds and sends a pipeline queuing these scripts with :func:`queue`);
    if the server does not know a script (restarted, flushed, a replica just promoted), load them
    and call it again, up to :data:`LOAD_ATTEMPTS` calls in all. A NOSCRIPT means no script ran;
    the pipeline's other commands must be safe to send again."""
    for _ in range(LOAD_ATTEMPTS - 1):
        try:
            return execute()
        except NoScriptError:
            load(client, *scripts)
    return execute()


class Part:
    """A part of the run store: the client, the key namespace and the scripts it runs.

    Args:
        client: A client with ``decode_responses=True``.
        keys: The key namespace.
        scripts: The scripts registered on ``client``.
    """

    def __init__(self, client: Redis, keys: Keys, scripts: Scripts) -> None:
        self.redis = client
        self.keys = keys
        self.scripts = scripts
