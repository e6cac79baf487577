"""Scheduled runs on a real worker: each run's ``${run.date}`` is the date of its tick."""

from __future__ import annotations

from datetime import UTC, datetime

from orchestrator.definition.loader import load_text
from orchestrator.engine.records import RunStatus
from tests.integration.conftest import Orchestra
from workers.schedules import fire


def test_catchup_runs_see_their_ticks_date(orchestra: Orchestra) -> None:
    workflow = load_text(
        "workflow: daily\nschedule:\n  - name: d\n    cron: '30 0 * * *'\n    timezone: Europe/Paris\n"
        "    overlap: allow\n    catchup: true\n    catchup_limit: 2\n"
        "steps:\n  a: {task: demo.echo, args: {date: '${run.date}', id: '${run.id}'}}\n",
        "daily.yaml",
    )
    spec = workflow.schedule[0]
    schedules = orchestra.store.schedules
    fire(orchestra.coordinator, schedules, workflow, spec, datetime(2026, 3, 1, 12, tzinfo=UTC))
    # Beat was down for three days. 00:30 in Paris is 23:30 UTC the day before: a run's date is its
    # tick's, in the schedule's time zone, whenever the run is created.
    started = fire(orchestra.coordinator, schedules, workflow, spec, datetime(2026, 3, 4, 12, tzinfo=UTC)).run_ids
    orchestra.worker(pool="threads", concurrency=2)
    records = [orchestra.wait(run_id) for run_id in started]
    assert [r.status for r in records] == [RunStatus.SUCCEEDED] * 2
    assert [r.steps["a"].output["date"] for r in records] == ["2026-03-03", "2026-03-04"]
    assert schedules.state("daily", "d").dropped == 1  # the 2026-03-02 tick is past the limit of 2
