"""How the step runner calls a user's task in process (``workers.runtime.CeleryTasks``), and what a worker's
pool tells its runtime (``note_pool``): pure unit tests."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from celery import Celery, Task

from config import Settings
from orchestrator.errors import UnknownTask
from workers.runtime import CeleryTasks, WorkerApp, note_pool

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


@pytest.mark.parametrize(
    ("pool", "fixed"), [("threads", True), ("prefork", False), ("solo", False), ("gevent", False), ("eventlet", False)]
)
def test_only_a_threads_pool_has_a_fixed_set_of_threads(pool: str, fixed: bool) -> None:
    # each of its threads then keeps a connection for the store's scripts; a greenlet never does
    app = WorkerApp(Settings(), "redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0")
    assert app.fixed_threads is False
    note_pool(sender=SimpleNamespace(app=app, pool_cls=pool))  # as worker_init sends it: the pool by name
    assert app.fixed_threads is fixed
    note_pool(sender=SimpleNamespace(app=Celery(set_as_current=False), pool_cls="threads"))  # not ours: ignored
