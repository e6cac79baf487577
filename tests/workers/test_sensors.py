"""Sensors: edge-triggered runs from a check's output, one run per edge even with two beats running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from config import Settings, get_settings
from orchestrator.cli import app as cli_app
from orchestrator.cli import console
from orchestrator.engine.ports import RunQuery
from orchestrator.engine.records import RunRecord, Trigger
from orchestrator.triggers.sensors import SENSE_TASK
from tests.integration.conftest import ROOT, Orchestra
from workers.app import WorkerApp, create_app

SENSOR = """\
workflow: {name}
params:
  percent: {{type: integer}}
sensor:
  task: t.gauge
  args: {{name: {name}}}
  every: {every}
  when: "${{check.output.percent}} > 80"
  cooldown: {cooldown}
  rearm: {rearm}
  params: {{percent: "${{check.output.percent}}"}}
steps:
  alert: {{task: t.effect, args: {{name: "alert-${{run.id}}", value: "${{params.percent}}"}}}}
"""


def sensor_file(directory: Path, name: str, *, every: str = "1s", cooldown: str = "0s", rearm: str = "edge") -> None:
    text = SENSOR.format(name=name, every=every, cooldown=cooldown, rearm=rearm)
    (directory / f"{name}.yaml").write_text(text, encoding="utf-8")


class Gauge:
    """The value the sensor's check reads, set by the test."""

    def __init__(self, orchestra: Orchestra, name: str) -> None:
        self.orchestra = orchestra
        self.name = name

    def set(self, percent: int) -> None:
        self.orchestra.redis.set(f"{self.orchestra.prefix}:effects:gauge-{self.name}", percent)

    def checks(self) -> int:
        return int(self.orchestra.redis.get(f"{self.orchestra.prefix}:effects:checks-{self.name}") or 0)


@pytest.fixture
def app(orchestra: Orchestra, tmp_path: Path) -> Iterator[WorkerApp]:
    settings = Settings(**{**orchestra.settings_values(), "workflows_dir": tmp_path})
    app = create_app(settings)
    app.loader.import_default_modules()
    yield app
    app.close()


def runs_of(orchestra: Orchestra, workflow: str) -> list[RunRecord]:
    summaries = orchestra.store.runs.page(RunQuery(workflow=workflow, limit=100)).runs
    return [orchestra.coordinator.get(s.run_id) for s in summaries]


def test_one_run_per_edge_and_none_while_it_stays_true(orchestra: Orchestra, app: WorkerApp, tmp_path: Path) -> None:
    sensor_file(tmp_path, "disk")
    gauge, sense = Gauge(orchestra, "disk"), app.tasks[SENSE_TASK]
    gauge.set(50)
    assert sense(workflow="disk") is None
    gauge.set(91)
    first = sense(workflow="disk")
    assert first is not None
    assert sense(workflow="disk") is None and sense(workflow="disk") is None  # still true: no second run
    gauge.set(10)
    assert sense(workflow="disk") is None
    gauge.set(85)
    second = sense(workflow="disk")
    assert second not in (None, first)
    runs = runs_of(orchestra, "disk")
    assert [r.params for r in reversed(runs)] == [{"percent": 91}, {"percent": 85}]  # the output fed the params
    assert {(r.trigger, r.started_by) for r in runs} == {(Trigger.SENSOR, "sensor:disk")}
    state = orchestra.store.sensors.state("disk")
    assert state.edges == 2 and state.last_run == second and state.holds and state.checks == 6


def test_cooldown_and_rearm(orchestra: Orchestra, app: WorkerApp, tmp_path: Path) -> None:
    sensor_file(tmp_path, "edge", cooldown="1h")
    sensor_file(tmp_path, "level", cooldown="1s", rearm="cooldown")
    sense = app.tasks[SENSE_TASK]
    for name in ("edge", "level"):
        Gauge(orchestra, name).set(95)
    assert sense(workflow="edge") is not None
    Gauge(orchestra, "edge").set(0)
    sense(workflow="edge")
    Gauge(orchestra, "edge").set(95)
    assert sense(workflow="edge") is None  # turned true again, but within the cooldown
    assert sense(workflow="level") is not None
    assert sense(workflow="level") is None  # still within its cooldown
    time.sleep(1.1)
    assert sense(workflow="level") is not None  # still true, cooldown over: rearm: cooldown fires again
    assert len(runs_of(orchestra, "edge")) == 1 and len(runs_of(orchestra, "level")) == 2


def test_a_check_that_fails_changes_nothing_and_is_shown(orchestra: Orchestra, app: WorkerApp, tmp_path: Path) -> None:
    sensor_file(tmp_path, "broken")
    text = (tmp_path / "broken.yaml").read_text().replace("${check.output.percent} > 80", "${check.output.gone} > 80")
    (tmp_path / "broken.yaml").write_text(text)
    assert app.tasks[SENSE_TASK](workflow="broken") is None
    state = orchestra.store.sensors.state("broken")
    assert state.error is not None and "gone" in state.error and state.holds is None and state.checks == 1
    assert runs_of(orchestra, "broken") == []


def test_an_edge_whose_run_was_not_recorded_is_started_by_the_next_check(
    orchestra: Orchestra, app: WorkerApp, tmp_path: Path
) -> None:
    """A checker that died between deciding the edge and starting its run: the next check starts it, once."""
    sensor_file(tmp_path, "crash")
    Gauge(orchestra, "crash").set(99)
    from orchestrator.definition.models import Rearm

    assert orchestra.store.sensors.observe("crash", True, {"percent": 99}, time.time(), 0, Rearm.EDGE) == 1
    run_id = app.tasks[SENSE_TASK](workflow="crash")
    assert run_id is not None and app.tasks[SENSE_TASK](workflow="crash") is None
    assert [r.run_id for r in runs_of(orchestra, "crash")] == [run_id]


def beat(orchestra: Orchestra, tmp_path: Path, name: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "celery", "-A", "workers.app", "beat", "--loglevel", "INFO",
        "--schedule", str(tmp_path / f"{name}-schedule"), "--pidfile", str(tmp_path / f"{name}.pid"),
    ]  # fmt: skip
    with (tmp_path / f"{name}.log").open("wb") as log:
        return subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def test_two_beats_start_one_run_per_edge(orchestra: Orchestra, tmp_path: Path) -> None:
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    sensor_file(workflows, "tank")
    orchestra.extra_env["ORCH_WORKFLOWS_DIR"] = str(workflows)
    orchestra.worker(concurrency=4)
    gauge = Gauge(orchestra, "tank")
    gauge.set(0)
    beats = [beat(orchestra, tmp_path, f"beat{i}", orchestra.env()) for i in (1, 2)]
    try:

        def wait_checks(more: int) -> None:
            target = gauge.checks() + more
            deadline = time.monotonic() + 30
            while gauge.checks() < target:
                assert time.monotonic() < deadline, (tmp_path / "beat1.log").read_text()[-2000:]
                time.sleep(0.2)

        wait_checks(4)  # both beats check, about once a second each
        gauge.set(90)
        wait_checks(6)
        gauge.set(0)
        wait_checks(4)
        gauge.set(95)
        wait_checks(6)
    finally:
        for process in beats:
            os.killpg(process.pid, signal.SIGTERM)
        for process in beats:
            process.wait(15)
    runs: list[Any] = runs_of(orchestra, "tank")
    assert sorted(r.params["percent"] for r in runs) == [90, 95]
    for run in runs:
        assert orchestra.wait(run.run_id).status.value == "succeeded"


def test_the_sensors_command_shows_the_last_check_result_and_run(
    orchestra: Orchestra, app: WorkerApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sensor_file(tmp_path, "disk")
    sensor_file(tmp_path, "quiet")
    Gauge(orchestra, "disk").set(97)
    run_id = app.tasks[SENSE_TASK](workflow="disk")
    for name, value in orchestra.settings_values().items():
        if isinstance(value, str):
            monkeypatch.setenv(f"ORCH_{name.upper()}", value)
    monkeypatch.setenv("ORCH_WORKFLOWS_DIR", str(tmp_path))
    monkeypatch.setenv("ORCH_TASK_MODULES", "tests.integration.tasks")
    get_settings.cache_clear()
    try:
        listed = CliRunner().invoke(cli_app, ["sensors", "--json"])
        monkeypatch.setattr(console.out, "width", 400)  # a table on one line per sensor
        table = CliRunner().invoke(cli_app, ["sensors"])
    finally:
        get_settings.cache_clear()
    assert listed.exit_code == 0, listed.stderr
    rows = {row["workflow"]: row for row in json.loads(listed.stdout)}
    assert rows["disk"]["holds"] is True and rows["disk"]["last_run"] == run_id and rows["disk"]["edges"] == 1
    assert json.loads(rows["disk"]["result"]) == {"percent": 97} and rows["disk"]["last_run_status"] == "pending"
    assert rows["quiet"]["checked_at"] is None and rows["quiet"]["last_run"] is None
    assert table.exit_code == 0 and "t.gauge" in table.stdout and run_id in table.stdout and "never" in table.stdout
