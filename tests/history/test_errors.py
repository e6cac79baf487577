"""A bad ``ORCH_HISTORY_URL`` is one clear line and an exit code, never a traceback or the password."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from config import get_settings
from orchestrator.cli import app
from tests.conftest import Postgres
from tests.history.conftest import command, env
from tests.integration.conftest import ROOT

SECRET = "hunter2-" + uuid.uuid4().hex[:6]


@pytest.fixture
def shell(redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("ORCH_BROKER_URL", redis_url)
    monkeypatch.setenv("ORCH_KEY_PREFIX", key_prefix)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def run(runner: CliRunner, monkeypatch: pytest.MonkeyPatch, url: str | None, *args: str) -> tuple[int, str]:
    if url is None:
        monkeypatch.delenv("ORCH_HISTORY_URL", raising=False)
    else:
        monkeypatch.setenv("ORCH_HISTORY_URL", url)
    get_settings.cache_clear()
    result = runner.invoke(app, list(args))
    assert SECRET not in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, " ".join(result.stderr.split())


@pytest.mark.parametrize(
    ("url", "code", "message"),
    [
        (f"mysql://app:{SECRET}@db/runs", 2, "ORCH_HISTORY_URL: has scheme mysql://; write postgresql://"),
        (f"postgresql://app:{SECRET}@db:99999/runs", 2, "ORCH_HISTORY_URL: has a port that is not a number"),
        (
            f"postgresql://app:{SECRET}@127.0.0.1:1/runs",
            3,
            "cannot reach the history database (ORCH_HISTORY_URL) at 127.0.0.1:1/runs: connection refused",
        ),
        (
            "postgresql://postgres@127.0.0.1:5432/no_such_history_db",
            3,
            'at 127.0.0.1:5432/no_such_history_db: database "no_such_history_db" does not exist',
        ),
    ],
)
def test_a_bad_history_url_is_one_clear_line(
    shell: CliRunner, monkeypatch: pytest.MonkeyPatch, postgres: Postgres, url: str, code: int, message: str
) -> None:
    for args in (("history", "status"), ("history", "migrate"), ("status", uuid.uuid4().hex)):
        exit_code, said = run(shell, monkeypatch, url, *args)
        assert (exit_code, message in said) == (code, True), (args, said)


def test_history_commands_without_a_history_say_what_to_set(shell: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    for args in (("history", "migrate"), ("history", "export", "--once"), ("history", "status")):
        code, said = run(shell, monkeypatch, None, *args)
        assert code == 2 and "set ORCH_HISTORY_URL=postgresql://" in said, said


def test_a_history_without_its_schema_is_refused_in_check_mode_and_migrated_in_auto(
    shell: CliRunner, monkeypatch: pytest.MonkeyPatch, postgres: Postgres
) -> None:
    url = postgres.database()
    monkeypatch.setenv("ORCH_HISTORY__MIGRATE", "check")
    code, said = run(shell, monkeypatch, url, "history", "export", "--once")
    assert code == 2 and "has no schema yet; this version needs 0001: run `orchestrator history migrate`" in said
    code, said = run(shell, monkeypatch, url, "status", uuid.uuid4().hex)
    assert code == 2 and "has no tables yet: run `orchestrator history migrate`" in said
    monkeypatch.setenv("ORCH_HISTORY__MIGRATE", "auto")
    code, _ = run(shell, monkeypatch, url, "history", "export", "--once")
    assert code == 0
    code, _ = run(shell, monkeypatch, url, "history", "downgrade", "base")
    assert code == 0
    result = shell.invoke(app, ["history", "migrate"])
    assert result.exit_code == 0 and "empty -> 0001" in result.stdout


def test_the_api_refuses_to_start_on_a_history_it_cannot_reach(redis_url: str, key_prefix: str) -> None:
    environment = env(redis_url, key_prefix, f"postgresql://app:{SECRET}@127.0.0.1:1/runs")
    done = subprocess.run(command("api", "--port", "1"), cwd=ROOT, env=environment, capture_output=True, timeout=60)
    said = done.stderr.decode()
    assert done.returncode == 3, said
    assert "cannot reach the history database (ORCH_HISTORY_URL) at 127.0.0.1:1/runs: connection refused" in said
    assert "Traceback" not in said and SECRET not in said
