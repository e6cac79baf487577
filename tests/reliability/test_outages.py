"""Redis restarted under a running workflow, and the broker connection cut for 20 s.

In both, the Celery consumer loses its broker connection while a step runs. Our config sets
``worker_cancel_long_running_tasks_on_connection_loss``, so the worker terminates the pool
process running the step: its message cannot be acknowledged on a new connection (a plain
task's stays in kombu's unacked hash until the visibility timeout, celery#4984; a step message
has no copy there, ``workers/transport.py``). The step's lease stops being
renewed, and once the worker is connected again its sweeper re-dispatches the step: the task
starts again, its side effect (recorded at the end of ``t.block``) happens once. The same worker
must resume consuming (celery#10205 is a worker that does not). Before ``workers/transport.py``
the Redis restart made the worker exit instead: ``Unrecoverable error: AttributeError("'NoneType'
object has no attribute 'hostname'")``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlparse

import pytest

from orchestrator.engine.records import RunStatus, StepStatus
from tests.integration.conftest import RedisServer, WorkerProcess
from tests.reliability.conftest import Harness, wait_until
from tests.reliability.proxy import TcpProxy

pytestmark = pytest.mark.integration

CUT_SECONDS = 20.0


def _workflow(name: str, long_seconds: float) -> dict[str, object]:
    return {
        "workflow": name,
        "steps": {
            "first": {"task": "t.effect", "args": {"name": "first"}},
            "long": {"task": "t.block", "needs": ["first"], "args": {"name": "long", "seconds": long_seconds}},
            "left": {"task": "t.effect", "needs": ["long"], "args": {"name": "left"}},
            "right": {"task": "t.effect", "needs": ["long"], "args": {"name": "right"}},
            "last": {"task": "t.effect", "needs": ["left", "right"], "args": {"name": "last"}},
        },
    }


EFFECTS = {"first": 1, "long": 1, "left": 1, "right": 1, "last": 1}


def _interrupted_step_back(orchestra: Harness, run_id: str, worker: WorkerProcess) -> Callable[[], bool]:
    """True once the interrupted step started again, or the run ended (if it was not interrupted)."""

    def back() -> bool:
        _assert_alive(worker)
        if orchestra.started().count("long") >= 2:
            return True
        record = orchestra.record(run_id)
        return record is not None and record.status.finished

    return back


def _assert_alive(worker: WorkerProcess) -> None:
    if worker.process.poll() is not None:
        log = worker.log.read_text(errors="replace")
        fatal = [line for line in log.splitlines() if "CRITICAL" in line or "Unrecoverable" in line]
        raise AssertionError(f"worker {worker.name} exited ({worker.process.returncode}): {fatal}\n{log[-3000:]}")


def test_redis_restart_mid_run(
    harness: Callable[..., Harness], redis_server: Callable[..., RedisServer], recovery: Callable[..., None]
) -> None:
    server = redis_server("--appendonly", "yes", "--appendfsync", "everysec")
    orchestra = harness(broker_url=server.url, store_url=server.url)
    worker = orchestra.worker(name="restart", concurrency=2)
    run_id = orchestra.submit(_workflow("redis-restart", long_seconds=4.0))
    wait_until(lambda: "long" in orchestra.started(), 20, "the long step started")

    assert server.process is not None
    server.process.terminate()  # SIGTERM: Redis fsyncs the append-only file and exits
    assert server.process.wait(10) == 0
    time.sleep(2.0)  # down for a while, so every client notices
    server.start()  # same port, same directory: it reloads the append-only file
    back_up = time.monotonic()

    resumed = wait_until(_interrupted_step_back(orchestra, run_id, worker), 60, "the long step resumed")
    record = orchestra.wait(run_id, timeout=60)
    ended = time.monotonic()

    assert record.status is RunStatus.SUCCEEDED, orchestra.logs()
    assert all(step.status is StepStatus.SUCCEEDED for step in record.steps.values())
    assert orchestra.effects() == EFFECTS
    assert orchestra.started().count("long") in (1, 2)
    assert worker.process.poll() is None, "the worker died with its broker"
    recovery(
        resumed - back_up,
        "Redis back up -> interrupted step running again",
        run_finished_after=ended - back_up,
        long_starts=orchestra.started().count("long"),
    )


def test_broker_connection_cut_for_20s(
    harness: Callable[..., Harness], redis_url: str, recovery: Callable[..., None]
) -> None:
    redis = urlparse(redis_url)
    with TcpProxy(redis.hostname or "127.0.0.1", redis.port or 6379) as proxy:
        # Only the broker goes through the proxy; run state is read directly.
        orchestra = harness(broker_url=proxy.url(int(redis.path.strip("/") or 0)))
        worker = orchestra.worker(name="cut", concurrency=2)
        run_id = orchestra.submit(_workflow("broker-cut", long_seconds=5.0))
        wait_until(lambda: "long" in orchestra.started(), 20, "the long step started")

        dropped = proxy.cut()
        time.sleep(CUT_SECONDS)
        assert worker.process.poll() is None, "the worker died during the cut"
        assert orchestra.effects().get("left") is None, "work went on without a broker"
        proxy.start()
        reopened = time.monotonic()

        resumed = wait_until(_interrupted_step_back(orchestra, run_id, worker), 60, "the long step resumed")
        record = orchestra.wait(run_id, timeout=60)
        ended = time.monotonic()

    assert record.status is RunStatus.SUCCEEDED, orchestra.logs()
    assert orchestra.effects() == EFFECTS
    # The same worker resumed consuming: it ran the steps after the cut.
    assert {record.steps[s].worker for s in ("left", "right", "last")} == {orchestra.hostname(worker)}
    log = worker.log.read_text(errors="replace")
    assert "Connection to broker lost" in log
    recovery(
        resumed - reopened,
        "broker reachable again -> interrupted step running again",
        run_finished_after=ended - reopened,
        connections_dropped=dropped,
        long_starts=orchestra.started().count("long"),
    )


def test_a_publish_cut_off_mid_batch_is_the_broker_being_unreachable(
    redis_server: Callable[..., RedisServer],
) -> None:
    """kombu wraps a failed publish pipeline in ``BatchPublishError`` ("delivery is uncertain"). It used to
    escape the dispatcher and fail the step that was fanning out (the nemesis soak found it); it is the
    broker being unreachable: ServiceUnavailable, which leaves the unit to its lease and watchdog."""
    from celery import Celery

    from orchestrator.broker.dispatch import CeleryDispatcher
    from orchestrator.definition.loader import build_workflow
    from orchestrator.engine.ports import Delivery
    from orchestrator.engine.unit import StepMessage, Unit
    from orchestrator.errors import ServiceUnavailable
    from orchestrator.plan.compiler import compile_workflow
    from orchestrator.plan.policy import base_policy

    server = redis_server()
    plan = compile_workflow(build_workflow({"workflow": "w", "steps": {"a": {"task": "t.effect"}}}), base_policy())
    deliveries = [Delivery.of(plan, StepMessage.of(Unit("run", "a"), plan.plan_id), None)]
    with TcpProxy("127.0.0.1", server.port) as proxy:
        app = Celery("cut", broker=proxy.url(0), set_as_current=False)
        app.conf.broker_connection_retry = False
        dispatcher = CeleryDispatcher(app)
        try:
            assert len(dispatcher.send(deliveries)) == 1  # connected, and the pool keeps the connection
            proxy.cut()
            with pytest.raises(ServiceUnavailable, match="broker"):
                dispatcher.send(deliveries)
        finally:
            app.close()
