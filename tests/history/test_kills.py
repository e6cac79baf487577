"""The exporter SIGKILLed mid-batch, a real process killed by its pid, then run again: every run exactly once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from orchestrator.history.models import RunRow
from orchestrator.history.postgres import History
from orchestrator.store import RedisRunStore
from tests.history.conftest import command, env
from tests.history.factory import chain, finished_run
from tests.integration.conftest import ROOT

RUNS = 120
BATCH = 50


def written(history: History, run_ids: list[str]) -> int:
    with Session(history.engine) as session:
        return session.scalar(select(func.count()).select_from(RunRow).where(RunRow.run_id.in_(run_ids))) or 0


def kill(process: subprocess.Popen[bytes]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.wait(10)


def wait_for(condition: object, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if process.poll() is not None or time.monotonic() > deadline:
            kill(process) if process.poll() is None else None
            raise AssertionError(f"the exporter did not get there:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.05)


def export_once(environment: dict[str, str]) -> str:
    done = subprocess.run(
        command("history", "export", "--once"), cwd=ROOT, env=environment, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def assert_each_run_exactly_once(store: RedisRunStore, history: History, run_ids: list[str]) -> None:
    assert written(history, run_ids) == len(run_ids)
    assert store.archive.size() == 0
    for run_id in run_ids:
        assert history.reader.get(run_id) == store.runs.get(run_id)
        assert history.reader.history(run_id) == store.runs.history(run_id)


@pytest.mark.parametrize("point", ["before-commit", "after-commit"])
def test_an_exporter_killed_mid_batch_loses_no_run_and_writes_none_twice(
    point: str,
    store: RedisRunStore,
    history: History,
    history_url: str,
    redis_url: str,
    key_prefix: str,
    tmp_path: Path,
) -> None:
    plan = chain(f"kill-{point}")
    run_ids = [finished_run(store, plan) for _ in range(RUNS)]
    environment = env(redis_url, key_prefix, history_url) | {
        "ORCH_HISTORY__BATCH_SIZE": str(BATCH),
        "ORCH_HISTORY__LOCK_SECONDS": "2",  # the rerun takes over the dead exporter's lock after this
    }
    marker, log = tmp_path / "paused", tmp_path / "exporter.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.history.exporter_process", point, str(marker)],
            cwd=ROOT,
            env=environment,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    wait_for(marker.exists, process, log)
    kill(process)
    assert store.archive.size() == RUNS  # nothing left the queue
    assert written(history, run_ids) == (0 if point == "before-commit" else BATCH)
    report = export_once(environment)
    assert f"exported {RUNS} finished runs: {RUNS if point == 'before-commit' else RUNS - BATCH} written" in report
    assert_each_run_exactly_once(store, history, run_ids)


def test_the_exporter_command_killed_at_random_moments_loses_no_run(
    store: RedisRunStore, history: History, history_url: str, redis_url: str, key_prefix: str, tmp_path: Path
) -> None:
    plan = chain("kill-random", steps=3)
    run_ids = [finished_run(store, plan) for _ in range(400)]
    environment = env(redis_url, key_prefix, history_url) | {
        "ORCH_HISTORY__BATCH_SIZE": "10",
        "ORCH_HISTORY__LOCK_SECONDS": "2",
    }
    chance = random.Random(13)
    for kill_number in range(3):
        log = tmp_path / f"exporter-{kill_number}.log"
        seen = written(history, run_ids)
        with log.open("wb") as sink:
            process = subprocess.Popen(
                command("history", "export"), cwd=ROOT, env=environment, stdout=sink, stderr=subprocess.STDOUT
            )
        wait_for(lambda: written(history, run_ids) > seen, process, log)  # noqa: B023 - used before the next turn
        time.sleep(chance.uniform(0, 0.05))
        kill(process)
        assert store.archive.size() > 0, "the exporter finished before it was killed: use more runs"
    export_once(environment)
    assert_each_run_exactly_once(store, history, run_ids)
