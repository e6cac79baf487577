"""The scripts' calls on the main thread's kept connection (``orchestrator.store.scripts``), against a real Redis.

The clients here retry nothing (``Retry(NoBackoff(), 0)``): a call that reached a dead connection
would fail, so a passing call shows the connection was checked before it was used.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from redis import ConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.connection import Connection
from redis.exceptions import ResponseError
from redis.retry import Retry

from orchestrator.store.scripts import KeptConnection, LuaScript

ECHO = "return ARGV[1]"
FAIL = "return redis.error_reply('refused')"
SLOW_ECHO = """
local start = redis.call('TIME')
repeat local now = redis.call('TIME') until (now[1] - start[1]) * 1e6 + now[2] - start[2] > 200000
return ARGV[1]
"""


class Disowning(ConnectionPool):
    """A pool that disowns its connections when told (as a Sentinel-managed pool disowns those to a
    master that has been replaced)."""

    disowned = False

    def owns_connection(self, connection: Connection) -> int:
        return 0 if self.disowned else super().owns_connection(connection)


@pytest.fixture
def client(redis_url: str) -> Iterator[Redis]:
    pool = Disowning.from_url(redis_url, decode_responses=True, retry=Retry(NoBackoff(), 0))
    client = Redis(connection_pool=pool)
    yield client
    client.close()
    pool.disconnect()  # a pool given to the client is not the client's to close


@pytest.fixture
def kept(client: Redis) -> KeptConnection:
    kept = KeptConnection.of(client.connection_pool)
    assert kept is not None
    return kept


@pytest.fixture
def echo(client: Redis, kept: KeptConnection) -> LuaScript:
    return LuaScript(client, ECHO, kept)


def client_id(connection: Connection) -> int:
    connection.send_command("CLIENT", "ID")
    return int(connection.read_response())


def test_the_main_thread_keeps_one_connection_for_its_calls(
    echo: LuaScript, kept: KeptConnection, client: Redis
) -> None:
    assert [echo(args=[n]) for n in ("a", "b", "c")] == ["a", "b", "c"]
    connection = kept.get()
    before = client_id(connection)
    assert echo(args=["d"]) == "d" and kept.get() is connection and client_id(connection) == before
    assert client.connection_pool._in_use_connections == {connection}  # checked out once, not per call
    assert client.ping()  # the client's own commands use the pool's other connections


def test_other_threads_check_out_and_release_per_call(echo: LuaScript, kept: KeptConnection, client: Redis) -> None:
    # Threads that come and go (a server's, which end when idle) and greenlets keep nothing: kept connections
    # never grow with them.
    assert echo(args=["main"]) == "main"
    pool = client.connection_pool
    replies: list[Any] = []
    threads = [threading.Thread(target=lambda n=n: replies.append(echo(args=[str(n)]))) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(replies) == [str(n) for n in range(8)]
    assert pool._in_use_connections == {kept.get()}  # the threads' connections are back in the pool
    assert pool._available_connections


def test_each_of_a_fixed_set_of_threads_keeps_its_own(client: Redis) -> None:
    # A `--pool threads` worker's threads live as long as it does: each keeps one, reused call after call.
    kept = KeptConnection.of(client.connection_pool, fixed_threads=True)
    assert kept is not None
    echo = LuaScript(client, ECHO, kept)
    seen: dict[int, set[int]] = {}
    in_use: list[int] = []
    barrier = threading.Barrier(4, action=lambda: in_use.append(len(client.connection_pool._in_use_connections)))

    def calls(n: int) -> None:
        barrier.wait(timeout=30)  # all four at once: none can borrow another's connection
        for call in range(3):
            assert echo(args=[f"{n}.{call}"]) == f"{n}.{call}"
            seen.setdefault(n, set()).add(client_id(kept.get()))
        barrier.wait(timeout=30)  # all four done, none ended yet: the barrier's action counts them

    threads = [threading.Thread(target=calls, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert all(len(ids) == 1 for ids in seen.values()) and len(seen) == 4  # one connection a thread
    assert len(set().union(*seen.values())) == 4
    assert in_use == [0, 4]  # none before their calls; after, kept, not released after each call
    assert not client.connection_pool._in_use_connections  # and given back as their threads ended


def test_a_thread_that_ends_gives_its_kept_connection_back(client: Redis) -> None:
    # A thread a task started, or an in-process worker's once it stops: its connection is not lost to the pool.
    kept = KeptConnection.of(client.connection_pool, fixed_threads=True)
    assert kept is not None
    echo = LuaScript(client, ECHO, kept)
    thread = threading.Thread(target=lambda: echo(args=["once"]))
    thread.start()
    thread.join(timeout=30)
    pool = client.connection_pool
    assert not pool._in_use_connections and len(pool._available_connections) == 1


def test_a_kept_connection_the_server_closed_is_connected_again_before_the_call(
    echo: LuaScript, kept: KeptConnection, redis_url: str
) -> None:
    # Redis restarted, or its `timeout` closed an idle client: the call runs, on the same kept
    # connection connected anew (this client retries nothing: sent on the dead socket, it would fail).
    assert echo(args=["a"]) == "a"
    connection = kept.get()
    before = client_id(connection)
    killer = Redis.from_url(redis_url)
    assert killer.client_kill_filter(_id=before) == 1
    killer.close()
    assert echo(args=["b"]) == "b"
    assert kept.get() is connection and client_id(connection) != before


def test_a_call_cut_short_leaves_no_reply_for_the_next_one(
    echo: LuaScript, kept: KeptConnection, client: Redis
) -> None:
    # A soft time limit or a signal raised between sending the command and reading its reply: the
    # reply, still on its way (the script runs 200 ms), must not be read as the next call's.
    slow = LuaScript(client, SLOW_ECHO, kept)
    assert echo(args=["warm"]) == "warm"
    connection = kept.get()

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    connection.read_response = interrupted  # type: ignore[method-assign]
    try:
        with pytest.raises(KeyboardInterrupt):
            slow(args=["first"])
    finally:
        del connection.read_response
    assert echo(args=["second"]) == "second"


def test_an_error_reply_keeps_the_connection(echo: LuaScript, kept: KeptConnection, client: Redis) -> None:
    # The server's whole reply was read: no reconnect (and no AUTH, SELECT, Sentinel lookup) per error.
    assert echo(args=["a"]) == "a"
    before = client_id(kept.get())
    with pytest.raises(ResponseError, match="refused"):
        LuaScript(client, FAIL, kept)()
    assert echo(args=["b"]) == "b" and client_id(kept.get()) == before


def test_a_connection_its_pool_disowns_is_connected_again(echo: LuaScript, kept: KeptConnection, client: Redis) -> None:
    # A Sentinel-managed pool disowns connections to a master that has been replaced: the kept one
    # connects again (to the master the pool now names) instead of writing to the old one.
    assert echo(args=["a"]) == "a"
    before = client_id(kept.get())
    pool = client.connection_pool
    assert isinstance(pool, Disowning)
    pool.disowned = True
    try:
        connection = kept.get()
    finally:
        pool.disowned = False
    assert client_id(connection) != before
    assert echo(args=["b"]) == "b"


def test_a_resp3_client_keeps_none(redis_url: str) -> None:
    # Client-side caching and maintenance notifications change what data waiting on a connection means.
    assert KeptConnection.of(ConnectionPool.from_url(redis_url, protocol=3)) is None
    assert KeptConnection.of(ConnectionPool.from_url(redis_url)) is not None


def _child(kept: KeptConnection, parent: int, out: Any) -> None:
    connection = kept.get()
    out.put((id(connection) != parent, connection.pid == os.getpid(), kept.keeps()))


def test_a_forked_process_checks_out_its_own(echo: LuaScript, kept: KeptConnection) -> None:
    # A prefork pool process never writes on the socket its parent keeps.
    assert echo(args=["parent"]) == "parent"
    connection = kept.get()
    before = client_id(connection)
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    child = context.Process(target=_child, args=(kept, id(connection), out))
    child.start()
    try:
        assert out.get(timeout=30) == (True, True, True)  # its own, and its main thread keeps it
        child.join(timeout=30)
        assert child.exitcode == 0
    finally:
        if child.is_alive():
            child.kill()
            child.join()
    assert kept.get() is connection and client_id(connection) == before  # the parent's own, untouched
    assert echo(args=["still"]) == "still"
