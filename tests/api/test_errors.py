"""Every 4xx of the API over real HTTP, each in the one error shape, and the token checks (401, 403)."""

from __future__ import annotations

import time

import pytest

from tests.api.conftest import ApiServer, error_of

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def runs(api: ApiServer) -> dict[str, str]:
    """A finished run and a running one (cancelled at the end), and the workflows they belong to."""
    quick, slow = api.workflow(), api.workflow("slow")
    with api.http() as http:
        done = http.post(f"/v1/workflows/{quick}/runs", json={}).json()["run_id"]
        running = http.post(f"/v1/workflows/{slow}/runs", json={"params": {"seconds": 60}}).json()["run_id"]
        deadline = time.monotonic() + 30
        while http.get(f"/v1/runs/{done}", params={"wait": "5s"}).json()["status"] != "succeeded":
            assert time.monotonic() < deadline
        yield {"quick": quick, "done": done, "running": running}
        http.post(f"/v1/runs/{running}/cancel")


@pytest.mark.parametrize(
    ("content", "headers", "status", "kind"),
    [
        (b'{"params": {', {"Content-Type": "application/json"}, 400, "MalformedJSON"),
        (b"[1, 2]", {"Content-Type": "application/json"}, 422, "InvalidRequest"),
        (b'{"params": [1]}', {"Content-Type": "application/json"}, 422, "InvalidRequest"),
        (b'{"params": {}, "surprise": 1}', {"Content-Type": "application/json"}, 422, "InvalidRequest"),
        (b'{"params": {}, "idempotency_key": ""}', {"Content-Type": "application/json"}, 422, "InvalidRequest"),
        (b"params=1", {"Content-Type": "application/x-www-form-urlencoded"}, 415, "UnsupportedMediaType"),
        (b'{"params": {}}', {"Content-Type": "text/plain"}, 415, "UnsupportedMediaType"),
        (b'{"params": {}}', {}, 415, "UnsupportedMediaType"),
    ],
    ids=["malformed", "not-an-object", "params-not-an-object", "unknown-field", "empty-key", "form", "text", "none"],
)
def test_a_bad_body_is_a_4xx(
    api: ApiServer, runs: dict[str, str], content: bytes, headers: dict[str, str], status: int, kind: str
) -> None:
    with api.http("submit") as http:
        response = http.post(f"/v1/workflows/{runs['quick']}/runs", content=content, headers=headers)
    assert response.status_code == status, response.text
    assert error_of(response)["type"] == kind


def test_a_body_over_the_limit_is_a_413_declared_or_streamed(api: ApiServer, runs: dict[str, str]) -> None:
    big = b'{"params": {"label": "' + b"x" * (1024 * 1024 + 10) + b'"}}'
    path, headers = f"/v1/workflows/{runs['quick']}/runs", {"Content-Type": "application/json"}
    with api.http("submit") as http:
        declared = http.post(path, content=big, headers=headers)
        chunks = iter([big[i : i + 65536] for i in range(0, len(big), 65536)])
        streamed = http.post(path, content=chunks, headers=headers)  # no Content-Length: chunked
    for response in (declared, streamed):
        assert response.status_code == 413, response.text
        assert error_of(response)["type"] == "BodyTooLarge"


def test_params_of_the_wrong_type_are_a_422_naming_the_param(api: ApiServer, runs: dict[str, str]) -> None:
    with api.http("submit") as http:
        wrong_type = http.post(f"/v1/workflows/{runs['quick']}/runs", json={"params": {"n": "many"}})
        too_small = http.post(f"/v1/workflows/{runs['quick']}/runs", json={"params": {"n": 0}})
        undeclared = http.post(f"/v1/workflows/{runs['quick']}/runs", json={"params": {"nn": 1}})
    for response, param in ((wrong_type, "n"), (too_small, "n"), (undeclared, "nn")):
        assert response.status_code == 422, response.text
        error = error_of(response)
        assert error["type"] == "InvalidParams" and error["field"] == f"params.{param}", error
        assert param in error["message"]


def test_unknown_workflows_runs_and_routes_are_404s(api: ApiServer) -> None:
    with api.http() as http:
        answers = {
            "WorkflowNotFound": [http.post("/v1/workflows/nope/runs", json={}), http.get("/v1/workflows/nope")],
            "RunNotFound": [
                http.get("/v1/runs/nope"),
                http.get("/v1/runs/nope", params={"wait": "1s"}),
                http.post("/v1/runs/nope/cancel"),
                http.post("/v1/runs/nope/retry"),
                http.get("/v1/runs/nope/events"),
            ],
            "NotFound": [http.get("/v1/nothing-here")],
        }
    for kind, responses in answers.items():
        for response in responses:
            assert response.status_code == 404, (response.request.url, response.text)
            assert error_of(response)["type"] == kind, (response.request.url, response.text)


def test_cancelling_an_ended_run_and_retrying_a_running_one_are_409s(api: ApiServer, runs: dict[str, str]) -> None:
    with api.http() as http:
        cancel = http.post(f"/v1/runs/{runs['done']}/cancel")
        retry = http.post(f"/v1/runs/{runs['running']}/retry")
    for response in (cancel, retry):
        assert response.status_code == 409, response.text
        assert error_of(response)["type"] == "RunStateError"


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/v1/runs/{done}", {"wait": "forever"}, "wait"),
        ("/v1/runs/{done}", {"wait": "-1s"}, "wait"),
        ("/v1/runs", {"since": "last tuesday"}, "since"),
        ("/v1/runs", {"status": "asleep"}, "status"),
        ("/v1/runs", {"trigger": "magic"}, "trigger"),
        ("/v1/runs", {"limit": "0"}, "limit"),
        ("/v1/runs", {"limit": "ten"}, "limit"),
        ("/v1/runs/{done}/events", {"after": "yesterday"}, "after"),
        ("/v1/runs/{done}/events", {"after": "\u0f24\u0be7-0"}, "after"),  # digits of other scripts (a 500 once)
        ("/v1/runs/{done}/events", {"after": f"{2**64}-0"}, "after"),  # past Redis's 64 bits (a 500 once)
    ],
)
def test_bad_query_arguments_are_a_422_naming_the_argument(
    api: ApiServer, runs: dict[str, str], path: str, query: dict[str, str], field: str
) -> None:
    with api.http("read") as http:
        response = http.get(path.format(**runs), params=query)
    assert response.status_code == 422, response.text
    assert error_of(response)["field"] == field


def test_a_bad_cursor_is_a_4xx(api: ApiServer) -> None:
    with api.http("read") as http:
        response = http.get("/v1/runs", params={"next": "not-a-cursor"})
    assert 400 <= response.status_code < 500, response.text
    error_of(response)


@pytest.mark.parametrize(
    ("scope", "method", "path", "status", "kind"),
    [
        (None, "GET", "/v1/runs", 401, "NotAuthenticated"),
        ("wrong", "GET", "/v1/runs", 401, "NotAuthenticated"),
        (None, "POST", "/v1/workflows/{quick}/runs", 401, "NotAuthenticated"),
        ("read", "POST", "/v1/workflows/{quick}/runs", 403, "NotAllowed"),
        ("submit", "POST", "/v1/runs/{running}/cancel", 403, "NotAllowed"),
        ("submit", "POST", "/v1/runs/{done}/retry", 403, "NotAllowed"),
        ("read", "POST", "/v1/runs/{running}/cancel", 403, "NotAllowed"),
    ],
)
def test_tokens_and_scopes(
    api: ApiServer, runs: dict[str, str], scope: str | None, method: str, path: str, status: int, kind: str
) -> None:
    headers = {"Authorization": "Bearer not-a-token"} if scope == "wrong" else {}
    with api.http(None if scope == "wrong" else scope) as http:
        response = http.request(method, path.format(**runs), json={}, headers=headers)
    assert response.status_code == status, response.text
    assert error_of(response)["type"] == kind
    if status == 401:
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_a_wrong_method_is_a_405_in_the_shape(api: ApiServer) -> None:
    with api.http() as http:
        response = http.delete("/v1/runs")
    assert response.status_code == 405
    assert error_of(response)["type"] == "MethodNotAllowed"
