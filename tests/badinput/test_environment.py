"""Bad settings, unreachable services and hostile text: one line, the right exit code, no secret, no raw escape.

Settings that do not load name the setting and never its value; a URL Redis clients would
half-accept is refused before anything is written; Redis or the broker down is one line and
exit 3 (a run recorded before the broker failed still has its id printed); terminal control
sequences in stored text are shown escaped.
"""

from __future__ import annotations

import json
import socket
import uuid

import pytest
from redis import Redis

from orchestrator.errors import ExitCode
from orchestrator.store.dead_letters import DeadLetters
from orchestrator.store.keys import Keys
from tests.badinput.conftest import Cli

SECRET = "hunter2-" + uuid.uuid4().hex[:6]
ESC = "\x1b"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens there once the socket is closed


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"ORCH_FLOWER_BASIC_AUTH": SECRET}, "error: ORCH_FLOWER_BASIC_AUTH: must be user:password"),
        (
            {"ORCH_STORE_URL": f"amqp://guest:{SECRET}@localhost//"},
            "error: ORCH_STORE_URL: has scheme amqp://; use one of redis://, redis+cluster://, redis+socket://, "
            "rediss://, rediss+cluster://, sentinel://, unix://",
        ),
        (
            {"ORCH_BROKER_URL": f"redis://:{SECRET}@127.0.0.1:6379/notadb"},
            "error: ORCH_BROKER_URL: has a database that is not a number: write redis://HOST:PORT/NUMBER, such as /0",
        ),
        ({"ORCH_BROKER_URL": f"redis://:{SECRET}@127.0.0.1:99999/0"}, "error: ORCH_BROKER_URL: has a port that is not"),
        ({"ORCH_BROKER_URL": f"kafka://{SECRET}@host"}, "error: ORCH_BROKER_URL: has scheme kafka://; use one of"),
        ({"ORCH_WORKER__LEASE": SECRET}, "error: ORCH_WORKER__LEASE: Input should be a valid number"),
        (
            {"ORCH_BROKER_URL": f"amqp://guest:{SECRET}@localhost//", "ORCH_STORE_URL": ""},
            "error: run state needs Redis: ORCH_BROKER_URL is amqp://, so set ORCH_STORE_URL to a redis:// URL",
        ),
    ],
)
def test_a_bad_setting_is_one_line_naming_it_and_never_its_value(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    for name, value in env.items():
        if value:
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.delenv(name, raising=False)
    before = cli.store.snapshot()
    for command in (["runs"], ["status", "x"], ["run", "typed", "-p", "name=x"]):
        code, out, err = cli.invoke(*command)
        assert code == ExitCode.INVALID, (command, err)
        assert err.splitlines() and err.splitlines()[0].startswith(expected), err
        assert len(err.splitlines()) == 1 and SECRET not in out + err
    cli.store.assert_unchanged(before)


def test_a_bad_database_number_writes_nothing_to_database_0(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    zero = Redis(db=0)
    marker = f"{cli.store.prefix}-db0"
    monkeypatch.setenv("ORCH_BROKER_URL", "redis://127.0.0.1:6379/notadb")
    monkeypatch.setenv("ORCH_STORE_URL", "redis://127.0.0.1:6379/notadb")
    monkeypatch.setenv("ORCH_KEY_PREFIX", marker)
    code, _, _ = cli.invoke("run", str(cli.files / "typed.yaml"), "-p", "name=x")
    assert code == ExitCode.INVALID
    assert list(zero.scan_iter(match=f"{marker}*")) == []


@pytest.mark.parametrize(
    "command",
    [["runs"], ["status", "abc"], ["cancel", "abc"], ["retry", "abc"], ["dead-letters", "list"], ["run", "typed"]],
)
def test_redis_down_is_one_line_and_exit_3(cli: Cli, monkeypatch: pytest.MonkeyPatch, command: list[str]) -> None:
    port = _closed_port()
    monkeypatch.setenv("ORCH_BROKER_URL", f"redis://127.0.0.1:{port}/0")
    monkeypatch.setenv("ORCH_STORE_URL", f"redis://127.0.0.1:{port}/0")
    args = [*command, "-p", "name=x"] if command[0] == "run" else command
    if command[0] == "run":
        args[1] = str(cli.files / "typed.yaml")
    code, out, err = cli.invoke(*args)
    assert code == ExitCode.UNAVAILABLE, err
    assert err.splitlines() == [f"error: cannot reach Redis at 127.0.0.1:{port}: connection refused"]
    assert out == ""


def test_broker_down_with_the_store_up_prints_the_recorded_run(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    port = _closed_port()
    monkeypatch.setenv("ORCH_BROKER_URL", f"redis://127.0.0.1:{port}/0")  # the store stays on the test Redis
    code, out, err = cli.invoke("run", str(cli.files / "typed.yaml"), "-p", "name=x")
    assert code == ExitCode.UNAVAILABLE
    run_id = out.strip().splitlines()[-1]
    assert len(run_id) == 32
    assert len(err.splitlines()) == 1
    assert err.startswith(f"error: cannot reach the broker at 127.0.0.1:{port}: connection refused; run {run_id}")
    code, out, _ = cli.invoke("status", run_id, "--json")
    assert code == 0 and json.loads(out)["steps"]["fetch"]["status"] == "queued"  # recorded, waiting for the outbox


def test_control_sequences_in_stored_text_are_shown_escaped(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # tables wide enough not to fold the escaped text
    client = cli.store.client
    keys = Keys(cli.store.prefix)
    run_id = cli.store.seeded
    hostile = f"boom {ESC}]0;pwned{ESC}\\ {ESC}[2J gone"
    step = next(iter(json.loads(client.get(keys.plan(client.hget(keys.run(run_id), "plan_id"))))["steps"]))
    client.hset(keys.step(run_id, step), "error", json.dumps({"type": "E", "message": hostile}))
    code, out, _ = cli.invoke("status", run_id)
    assert code == 0 and ESC not in out and "\\x1b[2J" in out
    code, out, _ = cli.invoke("status", run_id, "--json")
    assert json.loads(out)["steps"][step]["error"]["message"] == hostile  # JSON keeps it exact (escaped)
    DeadLetters(client, keys).record(
        "unknown_task",
        hostile,
        body=b"{}",
        headers={"task": f"evil{ESC}[31m.task"},
        queue="default",
        content_type=None,
        content_encoding=None,
    )
    code, out, _ = cli.invoke("dead-letters", "list")
    assert code == 0 and ESC not in out and "\\x1b[31m" in out
