"""The command line against a real Redis (no worker: runs stay queued), with its exit codes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from config import get_settings
from orchestrator.cli import app

EXAMPLE = "examples/content-pipeline.yaml"


@pytest.fixture
def cli(redis_url: str, key_prefix: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("ORCH_BROKER_URL", redis_url)
    monkeypatch.setenv("ORCH_KEY_PREFIX", key_prefix)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def invoke(runner: CliRunner, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_run_prints_the_run_id_alone_on_its_last_line_and_params_are_coerced(cli: CliRunner) -> None:
    code, out, _ = invoke(cli, "run", EXAMPLE, "-p", "limit=7", "-p", "source=feed")
    assert code == 0
    run_id = out.strip().splitlines()[-1]
    assert len(run_id) == 32
    code, out, _ = invoke(cli, "status", run_id, "--json")
    assert code == 0
    record = json.loads(out)
    assert record["params"] == {"source": "feed", "limit": 7}
    assert record["trigger"] == "cli"
    assert record["steps"]["fetch"]["status"] == "queued"


def test_json_lists_and_objects_from_the_command_line(cli: CliRunner, tmp_path: Path) -> None:
    flow = tmp_path / "f.yaml"
    flow.write_text("workflow: f\nparams: {ids: {type: array}, opts: {type: object}}\nsteps:\n  a: {task: demo.echo}\n")
    code, out, _ = invoke(cli, "run", str(flow), "-p", "ids=[1,2]", "-p", 'opts={"a": true}', "--json")
    assert code == 0
    run_id = json.loads(out)["run_id"]
    code, out, _ = invoke(cli, "status", run_id, "--json")
    assert json.loads(out)["params"] == {"ids": [1, 2], "opts": {"a": True}}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-p", "limit=five"], "param 'limit' must be integer"),
        (["-p", "limit=0"], "param 'limit' must be >= 1"),
        (["-p", "nope=1"], "unknown param 'nope'"),
        (["-p", "limit"], "must be KEY=VALUE"),
    ],
)
def test_bad_params_exit_2_and_record_nothing(cli: CliRunner, args: list[str], message: str) -> None:
    code, out, err = invoke(cli, "run", EXAMPLE, *args)
    assert code == 2
    assert message in err
    assert invoke(cli, "runs", "--json")[1].strip() == "[]"


def test_invalid_file_and_unknown_workflow_exit_2(cli: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("workflow: bad\nsteps:\n  a: {task: demo.echo, needs: [b]}\n")
    code, _, err = invoke(cli, "run", str(bad))
    assert code == 2 and "bad.yaml:3:32: step 'a' needs 'b', which is not a step" in err
    code, _, err = invoke(cli, "run", "no-such-workflow")
    assert code == 2 and "no workflow 'no-such-workflow'" in err


def test_unknown_run_exits_1(cli: CliRunner) -> None:
    for command in ("status", "cancel", "retry"):
        code, _, err = invoke(cli, command, "0" * 32)
        assert code == 1, command
        assert "no run with id" in err


def test_cancel_then_runs_lists_it(cli: CliRunner) -> None:
    run_id = invoke(cli, "run", EXAMPLE)[1].strip()
    code, out, _ = invoke(cli, "retry", run_id)
    assert code == 2  # still pending: nothing to retry yet
    code, out, _ = invoke(cli, "cancel", run_id)
    assert code == 0 and "cancelled" in out
    code, out, _ = invoke(cli, "runs", "--status", "cancelled", "--json")
    assert [r["run_id"] for r in json.loads(out)] == [run_id]
    code, out, _ = invoke(cli, "status", run_id, "--json")
    assert {s["status"] for s in json.loads(out)["steps"].values()} == {"cancelled"}


def test_graph_and_plan(cli: CliRunner) -> None:
    code, out, _ = invoke(cli, "graph", EXAMPLE, "--format", "dot")
    assert code == 0 and out.startswith('digraph "content-pipeline"') and '"fetch" -> "process";' in out
    code, out, _ = invoke(cli, "graph", EXAMPLE)
    assert code == 0 and out.startswith("flowchart TD")
    code, out, _ = invoke(cli, "plan", EXAMPLE, "--json")
    report = json.loads(out)
    assert report["canvas"] == "chain(fetch, chord(group(process, for_each(thumbnails)), publish), report)"
    assert report["critical_path"] == ["fetch", "process", "publish", "report"]
    assert report["largest_message_bytes"] < 1024


def test_flower_never_runs_without_basic_auth(cli: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORCH_FLOWER_BASIC_AUTH", raising=False)
    code, _, err = invoke(cli, "flower")
    assert code == 2 and "ORCH_FLOWER_BASIC_AUTH" in err


def test_runs_with_a_filter_that_matches_nothing_stops_with_a_cursor(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``runs`` reads a bounded number of store pages, each a bounded number of runs: a filter that
    matches nothing costs the same however many runs there are, and says where to continue."""
    from orchestrator.cli import runs as runs_command
    from orchestrator.store import runs as store_runs

    monkeypatch.setattr(store_runs, "PAGE_SCAN", 1)  # a page examines as many runs as it may show
    monkeypatch.setattr(runs_command, "LIST_READS", 2)
    made = [invoke(cli, "run", EXAMPLE)[1].strip() for _ in range(6)]
    code, out, err = invoke(cli, "runs", "--status", "failed", "--limit", "2", "--json")
    assert code == 0 and json.loads(out) == []
    cursor = err.split("next page: --after ")[1].split()[0]  # 4 of the 6 examined
    code, out, err = invoke(cli, "runs", "--limit", "2", "--after", cursor, "--json")
    listed = [r["run_id"] for r in json.loads(out)]
    assert listed == made[:2][::-1], ([made.index(r) for r in listed], err)
