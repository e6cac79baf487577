"""``orchestrator backfill`` and ``orchestrator schedules`` against a real Redis (no worker: runs stay queued)."""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from config import Settings, get_settings
from orchestrator.cli import app, console
from orchestrator.definition.loader import load_file
from workers.app import create_app
from workers.runtime import WorkerApp
from workers.schedules import fire

HOURLY = """workflow: hourly
schedule:
  - name: h
    cron: "0 * * * *"
    params: {source: feed}
  - cron: "30 6 * * *"
    timezone: Europe/Berlin
    catchup: true
    catchup_limit: 5
params: {source: {type: string, default: x}}
steps:
  a: {task: demo.echo, args: {date: "${run.date}", source: "${params.source}"}}
"""


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    (tmp_path / "hourly.yaml").write_text(HOURLY)
    return tmp_path


@pytest.fixture
def cli(redis_url: str, key_prefix: str, flows: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("ORCH_BROKER_URL", redis_url)
    monkeypatch.setenv("ORCH_KEY_PREFIX", key_prefix)
    monkeypatch.setenv("ORCH_WORKFLOWS_DIR", str(flows))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


@pytest.fixture
def beat_app(redis_url: str, key_prefix: str, flows: Path) -> Iterator[WorkerApp]:
    built = create_app(Settings(broker_url=redis_url, key_prefix=key_prefix, workflows_dir=flows))
    assert isinstance(built, WorkerApp)
    yield built
    built.close()


def invoke(runner: CliRunner, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def backfill(runner: CliRunner, *args: str) -> dict[str, object]:
    code, out, err = invoke(runner, "backfill", "hourly", "--schedule", "h", *args, "--json")
    assert code == 0, err
    result: dict[str, object] = json.loads(out)
    return result


def test_backfill_is_one_run_per_tick_with_its_date_and_twice_starts_nothing(cli: CliRunner) -> None:
    first = backfill(cli, "--from", "2026-03-01T22:00:00Z", "--to", "2026-03-02T00:30:00Z")
    assert (first["started"], first["existing"]) == (3, 0)
    runs = first["runs"]
    assert isinstance(runs, list)
    assert [r["tick"] for r in runs] == [
        "2026-03-01T22:00:00+00:00",
        "2026-03-01T23:00:00+00:00",
        "2026-03-02T00:00:00+00:00",
    ]
    again = backfill(cli, "--from", "2026-03-01T22:00:00Z", "--to", "2026-03-02T00:30:00Z")
    assert (again["started"], again["existing"]) == (0, 3)
    assert again["runs"] == [{**r, "created": False} for r in runs]
    code, out, _ = invoke(cli, "status", runs[2]["run_id"], "--json")
    record = json.loads(out)
    assert record["trigger"] == "backfill" and record["started_by"] == f"user:{getpass.getuser()}"
    assert record["logical_date"] == "2026-03-02T00:00:00+00:00" and record["params"] == {"source": "feed"}


def test_backfill_does_not_run_a_tick_the_schedule_already_ran(cli: CliRunner, beat_app: WorkerApp) -> None:
    workflow = load_file(Path(str(beat_app.settings.workflows_dir)) / "hourly.yaml")
    runtime = beat_app.runtime
    scheduled = fire(
        runtime.coordinator,
        runtime.store.schedules,
        workflow,
        workflow.schedule[0],
        datetime(2026, 3, 1, 10, 5, tzinfo=UTC),
    ).run_ids
    code, out, _ = invoke(
        cli, "backfill", "hourly", "--schedule", "h", "--from", "2026-03-01T09:00Z", "--to", "2026-03-01T11:00Z"
    )
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[1] == f"2026-03-01T10:00:00+00:00  {scheduled[0]}  already there"
    assert lines[0].endswith("started") and lines[2].endswith("started")
    assert "3 tick(s), 2 started, 1 already there" in lines[-1]
    record = runtime.coordinator.get(scheduled[0])
    assert record.trigger.value == "schedule" and record.started_by == "schedule:h@2026-03-01T10:00:00+00:00"


def test_backfill_ticks_in_the_schedule_time_zone(cli: CliRunner) -> None:
    code, out, err = invoke(
        cli, "backfill", "hourly", "--schedule", "30 6 * * *", "--from", "2026-07-01", "--to", "2026-07-02", "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert [r["tick"] for r in result["runs"]] == ["2026-07-01T06:30:00+02:00"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "yesterday", "--to", "2026-03-02"], "--from 'yesterday' is not a time"),
        (["--from", "2026-03-01", "--to", "2026-13-01"], "--to '2026-13-01' is not a time"),
        (["--from", "2026-03-02", "--to", "2026-03-01"], "--to 2026-03-01 is before --from 2026-03-02"),
        (
            ["--from", "2020-01-01", "--to", "2026-01-01"],
            "--from 2020-01-01 --to 2026-01-01 holds more than 1000 ticks",
        ),
        (["--from", "2026-03-01", "--to", "2026-03-02", "--schedule", "nope"], "--schedule 'nope': workflow 'hourly'"),
        (["--from", "2026-03-01", "--to", "2026-03-02"], "has 2 schedules; pick one with --schedule"),
    ],
)
def test_bad_backfill_input_exits_2_with_one_line(cli: CliRunner, args: list[str], message: str) -> None:
    if "--schedule" not in args and "pick one" not in message:
        args = [*args, "--schedule", "h"]
    code, out, err = invoke(cli, "backfill", "hourly", *args)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and message in err


def test_schedules_lists_policies_next_ticks_and_last_run(
    cli: CliRunner, beat_app: WorkerApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    workflow = load_file(Path(str(beat_app.settings.workflows_dir)) / "hourly.yaml")
    runtime = beat_app.runtime
    now = datetime.now(UTC)
    [run_id] = fire(runtime.coordinator, runtime.store.schedules, workflow, workflow.schedule[0], now).run_ids
    code, out, _ = invoke(cli, "schedules", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [(r["workflow"], r["name"]) for r in rows] == [("hourly", "h"), ("hourly", "30 6 * * *")]
    h, daily = rows
    assert h["overlap"] == "skip" and h["catchup"] is False and len(h["next"]) == 3
    assert h["last_run"] == run_id and h["last_run_status"] == "pending" and h["started"] == 1 and h["skipped"] == 0
    assert daily["when"] == "cron '30 6 * * *' Europe/Berlin" and daily["catchup_limit"] == 5
    assert daily["last_run"] is None
    monkeypatch.setattr(console.out, "width", 400)  # a table on one line per schedule
    code, out, _ = invoke(cli, "schedules", "hourly")
    assert code == 0
    assert "hourly" in out and run_id in out and "up to 5" in out
