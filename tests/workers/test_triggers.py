"""Scheduled runs start once per tick, even when beat sends the tick twice."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis import Redis

from config import Settings
from orchestrator.engine.ports import RunQuery
from orchestrator.store import RedisRunStore
from orchestrator.triggers.schedules import START_RUN_TASK
from workers.app import create_app
from workers.beat import WorkflowScheduler


def test_start_run_is_exactly_once_per_tick(
    redis_url: str, key_prefix: str, redis_client: Redis, tmp_path: Path
) -> None:
    (tmp_path / "every.yaml").write_text(
        "workflow: every\nschedule:\n  - every: 1h\n    params: {x: 1}\n"
        "params: {x: {type: integer}}\nsteps:\n  a: {task: demo.echo, args: {x: '${params.x}'}}\n"
    )
    settings = Settings(broker_url=redis_url, key_prefix=key_prefix, workflows_dir=tmp_path)
    app = create_app(settings)
    try:
        assert app.conf.beat_schedule == {}  # nothing is read when the app is built
        scheduler = WorkflowScheduler(app, schedule_filename=str(tmp_path / "beat-schedule"))
        assert "every#0" in scheduler.schedule
        scheduler.close()
        start = app.tasks[START_RUN_TASK]
        first = start(workflow="every", entry="every#0", params={"x": 1})
        second = start(workflow="every", entry="every#0", params={"x": 1})  # a second beat, same tick
        assert first == second
        runs = RedisRunStore(redis_client, app.runtime.keys).runs.page(RunQuery()).runs
        assert [r.run_id for r in runs] == [first]
        assert runs[0].trigger.value == "schedule" and runs[0].params == {"x": 1}
    finally:
        app.close()


@pytest.mark.parametrize("entry", ["every#0"])
def test_unknown_workflow_is_a_clear_error(redis_url: str, key_prefix: str, tmp_path: Path, entry: str) -> None:
    app = create_app(Settings(broker_url=redis_url, key_prefix=key_prefix, workflows_dir=tmp_path))
    try:
        with pytest.raises(Exception, match="no workflow 'gone'"):
            app.tasks[START_RUN_TASK](workflow="gone", entry=entry, params={})
    finally:
        app.close()
