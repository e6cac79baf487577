"""Submit one celery-director workflow and time it (run by ``bench.peer`` in director's virtualenv).

Usage: ``python bench/director_driver.py PROJECT.NAME [TIMEOUT]`` with the ``DIRECTOR_*``
environment set. Submits the way ``director workflow run`` does (a ``workflows`` row, then
``WorkflowBuilder.run()``, which writes a ``tasks`` row per task and sends the canvas), waits for
the workflow's status to end, and prints one JSON object: epoch seconds of the submission
(``started``), of the last user task's end (``tasks.updated_at`` of its success, PostgreSQL's
``now()``) and of the workflow's end (``workflows.updated_at``, written by director's own closing
task after its fixed 0.5 s sleep), plus the status.
"""

from __future__ import annotations

import json
import sys
import time


def main(argv: list[str]) -> int:
    fullname = argv[0]
    timeout = float(argv[1]) if len(argv) > 1 else 300.0
    from director._auto import app
    from director.builder import WorkflowBuilder
    from director.extensions import db
    from director.models import StatusType
    from director.models.tasks import Task
    from director.models.workflows import Workflow

    with app.app_context():
        project, name = fullname.split(".")
        started = time.time()
        workflow = Workflow(project=project, name=name, payload={})
        workflow.save()
        WorkflowBuilder(workflow.id).run()
        submitted = time.time()
        deadline = time.monotonic() + timeout
        ended = (StatusType.success, StatusType.error, StatusType.canceled)
        while True:
            db.session.rollback()  # a fresh transaction sees the workers' commits
            found = Workflow.query.filter_by(id=workflow.id).first()
            if found.status in ended or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        tasks = Task.query.filter_by(workflow_id=workflow.id).all()
        print(
            json.dumps(
                {
                    "status": found.status.value,
                    "started": started,
                    "submitted": submitted,
                    "tasks": len(tasks),
                    "tasks_succeeded": sum(t.status == StatusType.success for t in tasks),
                    "last_task_end": max(t.updated_at for t in tasks).timestamp(),
                    "workflow_end": found.updated_at.timestamp(),
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
