"""Whatever escapes user code ends that attempt once, with a readable error: never a "dead worker".

A task calling ``sys.exit()``, raising an exception whose ``__str__`` raises, an error message
holding a lone surrogate (a file name that is not UTF-8), or a bare ``BaseException``: each used
to look like a worker death, so the task ran six times with ``max_attempts: 1`` and failed as
``WorkerLost``. A task output with such a string is refused as not JSON-readable.
"""

from __future__ import annotations

import pytest

from orchestrator.engine.records import RunStatus, StepStatus
from tests.integration.conftest import Orchestra

pytestmark = pytest.mark.integration

CASES = {
    "exit": ("SystemExit", "the task called sys.exit(3)"),
    "unprintable": ("_Unprintable", "<its message cannot be shown: RuntimeError in __str__>"),
    "surrogate": ("OSError", "cannot open /data/caf\\udce9.txt"),
    "base": ("BaseException", "a bare BaseException"),
}


def test_what_escapes_a_task_ends_its_attempt_once(orchestra: Orchestra) -> None:
    worker = orchestra.worker(concurrency=2)
    steps = {how: {"task": "t.escape", "args": {"name": how, "how": how}} for how in CASES}
    run_id = orchestra.submit({"workflow": "escapes", "steps": steps})
    record = orchestra.wait(run_id, timeout=60)
    assert record.status is RunStatus.FAILED
    effects = orchestra.effects()
    for how, (kind, message) in CASES.items():
        step = record.steps[how]
        assert step.status is StepStatus.FAILED and step.attempts == 1, how
        assert step.error is not None and (step.error.type, step.error.message) == (kind, message)
        assert effects[f"calls-{how}"] == 1, how  # ran once: not taken for a dead worker
    assert worker.process.poll() is None
    record.model_dump_json()  # the record is always readable


def test_an_output_that_is_not_utf_8_is_refused_and_the_record_stays_readable(orchestra: Orchestra) -> None:
    orchestra.worker(concurrency=1)
    run_id = orchestra.submit({"workflow": "surrogate", "steps": {"a": {"task": "t.surrogate_output"}}})
    record = orchestra.wait(run_id)
    step = record.steps["a"]
    assert step.status is StepStatus.FAILED and step.error is not None
    assert step.error.type == "NonSerializableOutput" and "UTF-8" in step.error.message
    record.model_dump_json()
