"""``orchestrator.Client`` and ``AsyncClient`` against a real server, and direct mode (``orchestrator.submit``)."""

from __future__ import annotations

import asyncio
import getpass

import pytest

import orchestrator
from orchestrator.client import AsyncClient, Client
from orchestrator.engine.records import RunStatus, Trigger
from orchestrator.errors import (
    InvalidArgument,
    InvalidParams,
    NotAllowed,
    NotAuthenticated,
    RunNotFound,
    RunStateError,
    ServiceUnavailable,
    WorkflowNotFound,
)
from tests.api.conftest import ApiServer
from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration


def test_the_sync_client_submits_waits_lists_and_reads(api: ApiServer) -> None:
    workflow = api.workflow()
    with api.client("admin") as client:
        submitted = client.submit(workflow, {"n": 2}, idempotency_key="k1")
        assert submitted.created
        repeat = client.submit(workflow, {"n": 2}, idempotency_key="k1")
        assert repeat.run_id == submitted.run_id and not repeat.created
        record = client.wait(submitted.run_id, timeout=30)
        assert record.status is RunStatus.SUCCEEDED and record.steps["only"].output == 2
        assert client.get(submitted.run_id) == record
        others = [client.submit(workflow, {"n": n}).run_id for n in range(3, 8)]
        listed = [run.run_id for run in client.runs(workflow=workflow, page_size=2)]
        assert listed == [*reversed(others), submitted.run_id]
        assert [e.event.value for e in client.events(submitted.run_id)][:1] == ["submitted"]
        assert workflow in [w.name for w in client.workflows()]
        detail = client.workflow(workflow)
        assert detail.steps[0].task == "t.effect" and "flowchart" in detail.diagram


def test_the_sync_client_cancels_and_retries(api: ApiServer) -> None:
    with api.client("admin") as client:
        run_id = client.submit(api.workflow("slow"), {"seconds": 30}).run_id
        unfinished = client.wait(run_id, timeout=1)
        assert not unfinished.status.finished  # wait gives the record as it is when the time is up
        with pytest.raises(RunStateError):
            client.retry(run_id)
        assert client.cancel(run_id).status is RunStatus.CANCELLED
        with pytest.raises(RunStateError):
            client.cancel(run_id)
        assert client.retry(run_id).status in (RunStatus.PENDING, RunStatus.RUNNING)
        client.cancel(run_id)
        by = {(e.event.value, e.by) for e in client.events(run_id) if e.by}
    assert {("submitted", "token:ops"), ("cancelled", "token:ops"), ("retried", "token:ops")} <= by


def test_errors_come_back_as_the_classes_of_the_error_tree(api: ApiServer) -> None:
    workflow = api.workflow()
    with api.client("submit") as client:
        with pytest.raises(InvalidParams) as invalid:
            client.submit(workflow, {"n": "lots"})
        assert "'n'" in str(invalid.value) and invalid.value.problems
        with pytest.raises(WorkflowNotFound):
            client.submit("no-such-workflow")
        with pytest.raises(RunNotFound, match="no run"):
            client.get("no-such-run")
        with pytest.raises(NotAllowed):
            client.cancel("no-such-run")
        with pytest.raises(InvalidArgument) as bad:
            list(client.runs(since="the other day"))
        assert bad.value.field == "since"
    with Client(api.url, "wrong-token") as stranger, pytest.raises(NotAuthenticated):
        stranger.workflows()
    with Client(f"http://127.0.0.1:{free_port()}", "t", timeout=2) as nobody, pytest.raises(ServiceUnavailable):
        nobody.get("x")


def test_the_async_client_does_the_same(api: ApiServer) -> None:
    workflow, slow = api.workflow(), api.workflow("slow")

    async def scenario() -> None:
        async with api.async_client("admin") as client:
            first = await client.submit(workflow, {"n": 5})
            record = await client.wait(first.run_id, timeout=30)
            assert record.status is RunStatus.SUCCEEDED and (await client.get(first.run_id)) == record
            ids = await asyncio.gather(*(client.submit(workflow, idempotency_key="same") for _ in range(8)))
            assert len({s.run_id for s in ids}) == 1 and sum(s.created for s in ids) == 1
            listed = [run.run_id async for run in client.runs(workflow=workflow, page_size=1)]
            assert listed == [ids[0].run_id, first.run_id]
            held = (await client.submit(slow, {"seconds": 30})).run_id
            assert (await client.cancel(held)).status is RunStatus.CANCELLED
            assert (await client.retry(held)).status in (RunStatus.PENDING, RunStatus.RUNNING)
            await client.cancel(held)
            assert "retried" in [e.event.value for e in await client.events(held)]
            assert (await client.workflow(workflow)).name == workflow
            assert workflow in [w.name for w in await client.workflows()]
            with pytest.raises(InvalidParams):
                await client.submit(workflow, {"n": -1})
            with pytest.raises(RunStateError):
                await client.cancel(first.run_id)
        async with AsyncClient(f"http://127.0.0.1:{free_port()}", "t", timeout=2) as nobody:
            with pytest.raises(ServiceUnavailable):
                await nobody.workflows()

    asyncio.run(scenario())


def test_direct_mode_submits_over_the_broker_and_store(api: ApiServer) -> None:
    workflow = api.workflow()
    settings = api.settings()
    run_id = orchestrator.submit(workflow, {"n": 9}, idempotency_key="direct-1", settings=settings)
    assert orchestrator.submit(workflow, {"n": 9}, idempotency_key="direct-1", settings=settings) == run_id
    with api.client("read") as client:
        record = client.wait(run_id, timeout=30)
    assert record.status is RunStatus.SUCCEEDED and record.steps["only"].output == 9
    assert record.trigger is Trigger.API and record.started_by == f"python:{getpass.getuser()}"
    assert orchestrator.get(run_id, settings=settings) == record
    with pytest.raises(InvalidParams):
        orchestrator.submit(workflow, {"n": "x"}, settings=settings)
    with pytest.raises(WorkflowNotFound):
        orchestrator.submit("no-such-workflow", settings=settings)
