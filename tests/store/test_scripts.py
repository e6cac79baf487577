"""The scripts' calls on each thread's kept connection (``orchestrator.store.scripts``), against a real Redis."""

from __future__ import annotations

import gc
import multiprocessing
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from redis import Redis

from orchestrator.store.scripts import KeptConnections, LuaScript

ECHO = "return ARGV[1]"
SLOW_ECHO = """
local start = redis.call('TIME')
repeat local now = redis.call('TIME') until (now[1] - start[1]) * 1e6 + now[2] - start[2] > 200000
return ARGV[1]
"""


@pytest.fixture
def client(redis_url: str) -> Iterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def kept(client: Redis) -> KeptConnections:
    return KeptConnections(client.connection_pool)


@pytest.fixture
def echo(client: Redis, kept: KeptConnections) -> LuaScript:
    return LuaScript(client, ECHO, kept)


def test_a_thread_keeps_one_connection_for_its_calls(echo: LuaScript, kept: KeptConnections, client: Redis) -> None:
    assert [echo(args=[n]) for n in ("a", "b", "c")] == ["a", "b", "c"]
    connection = kept.get()
    assert echo(args=["d"]) == "d" and kept.get() is connection
    assert connection in client.connection_pool._in_use_connections  # checked out once, not per call
    assert client.ping()  # the client's own commands use the pool's other connections


def test_each_thread_keeps_its_own_and_gives_it_back_when_it_ends(echo: LuaScript, kept: KeptConnections) -> None:
    # The threads of a `--pool threads` worker never share one connection (nor wait on one another's calls).
    pool = kept.pool
    seen: list[Any] = []
    barrier = threading.Barrier(4)

    def call(n: int) -> None:
        assert echo(args=[str(n)]) == str(n)
        seen.append(kept.get())
        barrier.wait()  # all four hold theirs at once

    threads = [threading.Thread(target=call, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(c) for c in seen}) == 4
    gc.collect()
    assert not pool._in_use_connections & set(seen)  # back in the pool, not leaked with their threads
    assert set(seen) <= set(pool._available_connections)


def test_a_kept_connection_the_server_closed_is_replaced_before_the_call(
    echo: LuaScript, kept: KeptConnections, redis_url: str
) -> None:
    # Redis restarted, or its `timeout` closed an idle client: the call runs once, on a new connection.
    assert echo(args=["a"]) == "a"
    connection = kept.get()
    connection.send_command("CLIENT", "ID")
    before = connection.read_response()
    killer = Redis.from_url(redis_url)
    assert killer.client_kill_filter(_id=before) == 1
    killer.close()
    assert echo(args=["b"]) == "b"
    assert kept.get() is connection  # the same kept connection, connected again
    connection.send_command("CLIENT", "ID")
    assert connection.read_response() != before


def test_a_call_cut_short_leaves_no_reply_for_the_next_one(
    echo: LuaScript, kept: KeptConnections, client: Redis
) -> None:
    # A soft time limit or a signal raised between sending the command and reading its reply: the
    # reply, still on its way (the script runs 200 ms), must not be read as the next call's.
    slow = LuaScript(client, SLOW_ECHO, kept)
    assert echo(args=["warm"]) == "warm"
    connection = kept.get()
    read = connection.read_response

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    connection.read_response = interrupted  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        slow(args=["first"])
    connection.read_response = read  # type: ignore[method-assign]
    assert echo(args=["second"]) == "second"


def _child_connection(kept: KeptConnections, parent: int, out: Any) -> None:
    connection = kept.get()
    out.put((id(connection) != parent, connection.pid == os.getpid()))


def test_a_forked_process_checks_out_its_own(echo: LuaScript, kept: KeptConnections) -> None:
    # A prefork pool process never writes on the socket its parent holds.
    assert echo(args=["parent"]) == "parent"
    parent = id(kept.get())
    context = multiprocessing.get_context("fork")
    out = context.Queue()
    child = context.Process(target=_child_connection, args=(kept, parent, out))
    child.start()
    assert out.get(timeout=30) == (True, True)
    child.join(timeout=30)
    assert child.exitcode == 0
    assert echo(args=["still"]) == "still"  # the parent's own is untouched
