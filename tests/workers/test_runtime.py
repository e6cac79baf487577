"""How the step runner calls a user's task in process (``workers.runtime.CeleryTasks``): pure unit tests."""

from __future__ import annotations

from typing import Any

import pytest
from celery import Celery, Task

from orchestrator.errors import UnknownTask
from workers.runtime import CeleryTasks

calls: list[str] = []


class Audited(Task):  # type: ignore[misc]
    """A base class that overrides ``__call__``, as teams do for auditing or tracing."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        calls.append(f"audited {self.name}")
        return super().__call__(*args, **kwargs)


@pytest.fixture
def app() -> Celery:
    app = Celery("runtime-test", set_as_current=False)

    @app.task(name="demo.add", shared=False)
    def add(a: int, b: int) -> int:
        return a + b

    @app.task(name="demo.bound", bind=True, shared=False)
    def bound(self: Task, x: int) -> str:
        return f"{self.name}:{x}:{self.request.kwargs}"  # called through Task.__call__: a request of its own

    @app.task(name="demo.audited", base=Audited, shared=False)
    def audited(x: int) -> int:
        return x * 2

    calls.clear()
    return app


def test_a_task_is_called_with_the_step_args_by_its_body_or_bound_through_call(app: Celery) -> None:
    call = CeleryTasks(app)
    assert call("demo.add", {"a": 2, "b": 3}) == 5
    assert call("demo.add", {"a": 1, "b": 1}) == 2  # the second call takes the body kept by name
    assert call("demo.bound", {"x": 7}) == "demo.bound:7:{'x': 7}"  # a bound task gets itself and its request


def test_a_task_whose_class_overrides_call_is_called_through_it(app: Celery) -> None:
    assert CeleryTasks(app)("demo.audited", {"x": 4}) == 8
    assert calls == ["audited demo.audited"]


def test_an_unknown_or_reserved_task_is_refused_by_name(app: Celery) -> None:
    call = CeleryTasks(app)
    with pytest.raises(UnknownTask, match="'demo.missing' is not registered"):
        call("demo.missing", {})
    with pytest.raises(UnknownTask, match="orchestrator's or Celery's own"):
        call("celery.backend_cleanup", {})
