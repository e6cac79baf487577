"""The Python client of the HTTP API: :class:`Client` and :class:`AsyncClient`, typed with the server's models.

Both speak the same requests: each method builds a :class:`Call` (a pure description of one
request and the model its answer parses into) and the client only sends it, so the sync and the
async client differ in ``await`` and nothing else. An error answer becomes the error of
:mod:`orchestrator.errors` its ``type`` names (a 422 ``InvalidParams`` raises the same
:class:`~orchestrator.errors.InvalidParams` the CLI raises); a server that cannot be reached
raises :class:`~orchestrator.errors.ServiceUnavailable`.

Example::

    with Client("http://127.0.0.1:8000", token) as client:
        run_id = client.submit("content-pipeline", {"source": "feed"}).run_id
        record = client.wait(run_id, timeout=300)
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, Self, TypedDict, TypeVar, Unpack
from urllib.parse import quote

import httpx
from pydantic import JsonValue, TypeAdapter

from orchestrator import errors
from orchestrator.api.schemas import EventPage, RunPageResponse, SubmitResponse, WorkflowDetail, WorkflowSummary
from orchestrator.engine.records import RunEvent, RunRecord, RunStatus, RunSummary, Trigger
from orchestrator.errors import OrchestratorError

T = TypeVar("T")
DEFAULT_TIMEOUT = 30.0
LONGEST_POLL = 50.0
"""Seconds one long-poll asks the server to hold (below the usual 60 s idle timeout of proxies)."""

__all__ = ["AsyncClient", "Call", "Client", "error_from"]


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request of the API and the type its answer parses into.

    Attributes:
        method: The HTTP method.
        path: The path under the server's URL.
        answer: What the body of a 2xx answer is.
        query: Query parameters (None values are left out).
        body: The JSON body, if any.
        hold: Seconds the server may hold the answer (a long-poll): added to the read timeout.
    """

    method: str
    path: str
    answer: TypeAdapter[T]
    query: Mapping[str, str | int | None] = field(default_factory=dict)
    body: Mapping[str, Any] | None = None
    hold: float = 0.0

    def request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        timeout = http.timeout.read
        params = {name: value for name, value in self.query.items() if value is not None}
        request = http.build_request(self.method, self.path, params=params, json=self.body)
        if timeout is not None:
            request.extensions["timeout"] = httpx.Timeout(http.timeout.connect, read=timeout + self.hold).as_dict()
        return request

    def parse(self, response: httpx.Response) -> T:
        """The answer's body as :attr:`answer`.

        Raises:
            OrchestratorError: the subclass the error body names (see :func:`error_from`).
        """
        if not response.is_success:
            raise error_from(response)
        return self.answer.validate_json(response.content)


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(kind: Any) -> TypeAdapter[Any]:
    if kind not in _ADAPTERS:
        _ADAPTERS[kind] = TypeAdapter(kind)
    return _ADAPTERS[kind]


def _call(method: str, path: str, answer: type[T], **options: Any) -> Call[T]:
    return Call(method, path, _adapter(answer), **options)


# --- the requests, built once for both clients -------------------------------------------------


def submit_call(
    workflow: str, params: Mapping[str, JsonValue] | None, idempotency_key: str | None
) -> Call[SubmitResponse]:
    body: dict[str, Any] = {"params": dict(params or {})}
    if idempotency_key is not None:
        body["idempotency_key"] = idempotency_key
    return _call("POST", f"/v1/workflows/{_segment(workflow)}/runs", SubmitResponse, body=body)


def get_call(run_id: str, wait: float = 0.0) -> Call[RunRecord]:
    query = {"wait": f"{max(int(wait * 1000), 1)}ms"} if wait > 0 else {}
    return _call("GET", f"/v1/runs/{_segment(run_id)}", RunRecord, query=query, hold=wait)


def action_call(run_id: str, action: str) -> Call[RunRecord]:
    return _call("POST", f"/v1/runs/{_segment(run_id)}/{action}", RunRecord)


def runs_call(filters: Mapping[str, str | int | None], cursor: str | None) -> Call[RunPageResponse]:
    return _call("GET", "/v1/runs", RunPageResponse, query={**filters, "next": cursor})


class RunFilters(TypedDict, total=False):
    """What ``runs()`` lists: the filters of ``GET /v1/runs`` and the page size."""

    workflow: str
    status: RunStatus | str
    trigger: Trigger | str
    since: str
    """An ISO-8601 time, or a duration ago such as ``1h``."""
    page_size: int


def run_query(filters: RunFilters) -> dict[str, str | int | None]:
    """The query of ``GET /v1/runs`` for these filters."""
    status, trigger = filters.get("status"), filters.get("trigger")
    return {
        "workflow": filters.get("workflow"),
        "status": str(status) if status is not None else None,
        "trigger": str(trigger) if trigger is not None else None,
        "since": filters.get("since"),
        "limit": filters.get("page_size", 100),
    }


def events_call(run_id: str, after: str | None) -> Call[EventPage]:
    return _call("GET", f"/v1/runs/{_segment(run_id)}/events", EventPage, query={"after": after})


def workflows_call() -> Call[list[WorkflowSummary]]:
    return _call("GET", "/v1/workflows", list[WorkflowSummary])


def workflow_call(name: str) -> Call[WorkflowDetail]:
    return _call("GET", f"/v1/workflows/{_segment(name)}", WorkflowDetail)


def _segment(value: str) -> str:
    """A path segment, percent-encoded: an id or name never changes which route is called."""
    return quote(value, safe="")


def waiting(run_id: str, timeout: float) -> Generator[Call[RunRecord], RunRecord, RunRecord]:
    """The long-polls of one ``wait``: each asks the server to hold until the run ends, up to the deadline.

    A generator both clients drive: it yields the next request and is sent its answer.
    """
    deadline = time.monotonic() + max(timeout, 0.0)
    record = yield get_call(run_id, min(max(deadline - time.monotonic(), 0.0), LONGEST_POLL))
    while not record.status.finished and time.monotonic() < deadline:
        record = yield get_call(run_id, min(max(deadline - time.monotonic(), 0.0), LONGEST_POLL))
    return record


# --- errors ------------------------------------------------------------------------------------


def _error_classes() -> dict[str, type[OrchestratorError]]:
    found: dict[str, type[OrchestratorError]] = {}
    pending: list[type[OrchestratorError]] = [OrchestratorError]
    while pending:
        cls = pending.pop()
        found[cls.__name__] = cls
        pending.extend(cls.__subclasses__())
    return found


_BY_STATUS: dict[int, type[OrchestratorError]] = {
    400: errors.InvalidArgument,
    401: errors.NotAuthenticated,
    403: errors.NotAllowed,
    409: errors.RunStateError,
    413: errors.InvalidArgument,
    415: errors.InvalidArgument,
    422: errors.InvalidArgument,
    503: errors.ServiceUnavailable,
}
"""What an error answer whose ``type`` is not a class of the tree (``InvalidRequest``, ``BodyTooLarge``) raises."""


def error_from(response: httpx.Response) -> OrchestratorError:
    """The error of :mod:`orchestrator.errors` an error answer stands for.

    The body's ``error.type`` names the class (the server sends an error's class name); other
    types, and bodies that are not the API's error shape (a proxy's page), map by HTTP status.
    """
    try:
        detail = response.json().get("error") or {}
        kind, message, where = str(detail["type"]), str(detail["message"]), detail.get("field")
    except (ValueError, AttributeError, KeyError, TypeError):
        kind, message, where = "", f"HTTP {response.status_code}: {response.text[:300]}", None
    cls = _error_classes().get(kind) or _BY_STATUS.get(response.status_code, OrchestratorError)
    return _build(cls, message, where)


def _build(cls: type[OrchestratorError], message: str, where: str | None) -> OrchestratorError:
    if issubclass(cls, errors.InvalidParams):
        return cls(message.split("; "))
    if issubclass(cls, errors.InvalidArgument):
        return cls(message, where)
    if issubclass(cls, errors.ServiceUnavailable):
        return cls(message)
    # Classes whose constructor builds its own message (RunNotFound, InvalidWorkflow): keep the server's.
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    return error


def _unreachable(url: httpx.URL, exc: httpx.TransportError) -> errors.ServiceUnavailable:
    return errors.ServiceUnavailable(f"cannot reach the API at {url}: {type(exc).__name__}: {exc}")


# --- the clients -------------------------------------------------------------------------------


class _Base:
    def __init__(self, url: str, token: str, timeout: float) -> None:
        self.url = httpx.URL(url.rstrip("/") + "/")
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self.timeout = httpx.Timeout(timeout)


class Client(_Base):
    """A client of the HTTP API, on a pooled ``httpx.Client``; use it as a context manager (or call :meth:`close`).

    Args:
        url: The server, e.g. ``http://127.0.0.1:8000``.
        token: A token of ``ORCH_API_TOKENS``: its scope decides what the calls may do.
        timeout: Seconds to connect and to read one answer (a long-poll gets its wait on top).
        transport: An httpx transport (tests: ``httpx.MockTransport``).
    """

    def __init__(
        self, url: str, token: str, *, timeout: float = DEFAULT_TIMEOUT, transport: httpx.BaseTransport | None = None
    ) -> None:
        super().__init__(url, token, timeout)
        self.http = httpx.Client(base_url=self.url, headers=self.headers, timeout=self.timeout, transport=transport)

    def send(self, call: Call[T]) -> T:
        """Send one request and parse its answer.

        Raises:
            OrchestratorError: the error the answer names.
            ServiceUnavailable: the server cannot be reached.
        """
        try:
            response = self.http.send(call.request(self.http))
        except httpx.TransportError as exc:
            raise _unreachable(self.url, exc) from exc
        return call.parse(response)

    def submit(
        self, workflow: str, params: Mapping[str, JsonValue] | None = None, idempotency_key: str | None = None
    ) -> SubmitResponse:
        """Start a run of a workflow of the server's ``ORCH_WORKFLOWS_DIR`` (needs scope ``submit``).

        Returns:
            The run's id, and ``created`` False when an earlier call with this key made it.

        Raises:
            WorkflowNotFound: no such workflow.
            InvalidParams: the params do not match its declaration.
        """
        return self.send(submit_call(workflow, params, idempotency_key))

    def get(self, run_id: str) -> RunRecord:
        """The run record. Raises RunNotFound."""
        return self.send(get_call(run_id))

    def wait(self, run_id: str, timeout: float = 60.0) -> RunRecord:
        """The record once the run has ended, or as it is after ``timeout`` seconds (check ``status.finished``).

        Long-polls: each request is held by the server until the run ends or its wait runs out.
        """
        polls = waiting(run_id, timeout)
        call = next(polls)
        while True:
            try:
                call = polls.send(self.send(call))
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    def cancel(self, run_id: str) -> RunRecord:
        """Cancel a run (scope ``admin``). Raises RunStateError when it has already ended."""
        return self.send(action_call(run_id, "cancel"))

    def retry(self, run_id: str) -> RunRecord:
        """Retry an ended run's failed, cancelled and unfinished steps (scope ``admin``).

        Raises:
            RunStateError: the run has not ended.
        """
        return self.send(action_call(run_id, "retry"))

    def runs(self, **filters: Unpack[RunFilters]) -> Iterator[RunSummary]:
        """Every run that matches, newest first, fetched a page at a time as the iteration goes.

        Args:
            filters: ``workflow``, ``status``, ``trigger``, ``since`` (ISO-8601, or a duration ago
                such as ``1h``) and ``page_size`` (runs per request, default 100).
        """
        query = run_query(filters)
        page = self.send(runs_call(query, None))
        yield from page.runs
        while page.next is not None:
            page = self.send(runs_call(query, page.next))
            yield from page.runs

    def events(self, run_id: str) -> list[RunEvent]:
        """The run's whole history, oldest first."""
        page = self.send(events_call(run_id, None))
        found = list(page.events)
        while page.next is not None:
            page = self.send(events_call(run_id, page.next))
            found += page.events
        return found

    def workflows(self) -> list[WorkflowSummary]:
        """The server's workflows, by name."""
        return self.send(workflows_call())

    def workflow(self, name: str) -> WorkflowDetail:
        """One workflow: params (JSON Schema), schedules, steps, diagram. Raises WorkflowNotFound."""
        return self.send(workflow_call(name))

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class AsyncClient(_Base):
    """:class:`Client` for asyncio, on ``httpx.AsyncClient``: the same methods, awaited.

    ``runs`` iterates with ``async for``; use it as ``async with`` (or await :meth:`aclose`).
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(url, token, timeout)
        self.http = httpx.AsyncClient(
            base_url=self.url, headers=self.headers, timeout=self.timeout, transport=transport
        )

    async def send(self, call: Call[T]) -> T:
        """:meth:`Client.send`, awaited."""
        try:
            response = await self.http.send(call.request(self.http))
        except httpx.TransportError as exc:
            raise _unreachable(self.url, exc) from exc
        return call.parse(response)

    async def submit(
        self, workflow: str, params: Mapping[str, JsonValue] | None = None, idempotency_key: str | None = None
    ) -> SubmitResponse:
        """:meth:`Client.submit`, awaited."""
        return await self.send(submit_call(workflow, params, idempotency_key))

    async def get(self, run_id: str) -> RunRecord:
        """:meth:`Client.get`, awaited."""
        return await self.send(get_call(run_id))

    async def wait(self, run_id: str, timeout: float = 60.0) -> RunRecord:
        """:meth:`Client.wait`, awaited."""
        polls = waiting(run_id, timeout)
        call = next(polls)
        while True:
            try:
                call = polls.send(await self.send(call))
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    async def cancel(self, run_id: str) -> RunRecord:
        """:meth:`Client.cancel`, awaited."""
        return await self.send(action_call(run_id, "cancel"))

    async def retry(self, run_id: str) -> RunRecord:
        """:meth:`Client.retry`, awaited."""
        return await self.send(action_call(run_id, "retry"))

    async def runs(self, **filters: Unpack[RunFilters]) -> AsyncIterator[RunSummary]:
        """:meth:`Client.runs`, with ``async for``."""
        query = run_query(filters)
        cursor: str | None = None
        while True:
            page = await self.send(runs_call(query, cursor))
            for run in page.runs:
                yield run
            if (cursor := page.next) is None:
                return

    async def events(self, run_id: str) -> list[RunEvent]:
        """:meth:`Client.events`, awaited."""
        page = await self.send(events_call(run_id, None))
        found = list(page.events)
        while page.next is not None:
            page = await self.send(events_call(run_id, page.next))
            found += page.events
        return found

    async def workflows(self) -> list[WorkflowSummary]:
        """:meth:`Client.workflows`, awaited."""
        return await self.send(workflows_call())

    async def workflow(self, name: str) -> WorkflowDetail:
        """:meth:`Client.workflow`, awaited."""
        return await self.send(workflow_call(name))

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
