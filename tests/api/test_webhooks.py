"""``POST /v1/hooks/{name}`` over real HTTP: signed deliveries start runs on a real worker, once per delivery id."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import subprocess
import textwrap
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook as Signer

from orchestrator.engine.records import RunRecord, Trigger
from tests.api.conftest import ApiServer, error_of

OLD = "whsec_" + base64.b64encode(b"old-orders-key-1" * 2).decode()
NEW = "whsec_" + base64.b64encode(b"new-orders-key-2" * 2).decode()
GITHUB_SECRET = "gh-s3cret"
DOCS_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # the one the README and docs/api.md sign with
API_ENV = {"ORCH_WEBHOOK_SECRETS": f"orders:{OLD},orders:{NEW},github:{GITHUB_SECRET},docs:{DOCS_SECRET}"}
ROOT = Path(__file__).resolve().parents[2]

ORDERS = {
    "workflow": "orders",
    "params": {"order_id": {"type": "integer"}},
    "webhook": {
        "name": "db-changes",
        "secret": "orders",
        "when": "${event.table} == 'orders' and ${event.type} == 'INSERT'",
        "params": {"order_id": "${event.record.id}"},
    },
    "steps": {"ship": {"task": "t.effect", "args": {"name": "ship-${params.order_id}", "value": "${params.order_id}"}}},
}
REFUNDS = {  # a second workflow on the same hook, with its own filter: one change feed routes both
    "workflow": "refunds",
    "params": {"order_id": {"type": "integer"}},
    "webhook": {**ORDERS["webhook"], "when": "${event.table} == 'orders' and ${event.type} == 'DELETE'"},
    "steps": {"refund": {"task": "t.effect", "args": {"name": "refund-${params.order_id}"}}},
}
PUSHES = {
    "workflow": "pushes",
    "params": {"ref": {"type": "string"}},
    "webhook": {"name": "github", "scheme": "github", "secret": "github", "params": {"ref": "${event.ref}"}},
    "steps": {"build": {"task": "t.effect", "args": {"name": "build-${run.id}", "value": "${params.ref}"}}},
}

DOCUMENTED = {  # the hook the README's and docs/api.md's shell example calls
    "workflow": "documented",
    "params": {"order_id": {"type": "integer"}},
    "webhook": {"name": "orders", "secret": "docs", "when": "${event.type} == 'INSERT'"},
    "steps": {"noop": {"task": "t.effect", "args": {"name": "documented-${run.id}"}}},
}
DOCUMENTED["webhook"]["params"] = {"order_id": "${event.record.id}"}


@pytest.fixture(scope="module")
def hooks(api: ApiServer) -> ApiServer:
    for workflow in (ORDERS, REFUNDS, PUSHES, DOCUMENTED):
        (api.workflows_dir / f"{workflow['workflow']}.json").write_text(json.dumps(workflow), encoding="utf-8")
    return api


def deliver(
    api: ApiServer, event: dict[str, Any], *, secret: str = OLD, msg_id: str | None = None, at: float | None = None
) -> httpx.Response:
    """Sign and POST a Standard Webhooks delivery to the db-changes hook."""
    body = json.dumps(event)
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    moment = datetime.fromtimestamp(at if at is not None else time.time(), UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Signer(secret).sign(msg_id, moment, body),
    }
    with api.http(scope=None) as http:  # no bearer token: a delivery is authenticated by its signature
        return http.post("/v1/hooks/db-changes", content=body, headers=headers)


def wait(api: ApiServer, run_id: str) -> RunRecord:
    with api.client() as client:
        return client.wait(run_id, timeout=30)


def insert(order_id: Any) -> dict[str, Any]:
    return {"table": "orders", "type": "INSERT", "record": {"id": order_id}}


def test_a_signed_delivery_starts_a_run_with_params_from_the_body(hooks: ApiServer) -> None:
    answer = deliver(hooks, insert(41), msg_id="msg_first")
    assert answer.status_code == 202, answer.text
    [started] = answer.json()["runs"]
    assert started["workflow"] == "orders" and started["created"] and answer.json()["run_id"] == started["run_id"]
    record = wait(hooks, started["run_id"])
    assert record.status.value == "succeeded" and record.params == {"order_id": 41}
    assert record.trigger is Trigger.WEBHOOK and record.started_by == "hook:db-changes/msg_first"
    assert record.steps["ship"].output == 41


def test_a_redelivery_starts_no_second_run(hooks: ApiServer) -> None:
    first = deliver(hooks, insert(42), msg_id="msg_again")
    again = deliver(hooks, insert(42), msg_id="msg_again")
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["run_id"] == first.json()["run_id"] and not again.json()["runs"][0]["created"]
    assert wait(hooks, first.json()["run_id"]).status.value == "succeeded"
    assert hooks.orchestra.effects()["ship-42"] == 1


def test_the_filter_routes_one_feed_to_each_workflow_and_drops_the_rest(hooks: ApiServer) -> None:
    refund = deliver(hooks, {"table": "orders", "type": "DELETE", "record": {"id": 43}})
    assert refund.status_code == 202 and [r["workflow"] for r in refund.json()["runs"]] == ["refunds"]
    other = deliver(hooks, {"table": "users", "type": "INSERT", "record": {"id": 1}})
    assert other.status_code == 202
    assert other.json()["run_id"] is None and "filter" in other.json()["reason"]


def test_rotated_secrets_are_both_valid(hooks: ApiServer) -> None:
    assert deliver(hooks, insert(44), secret=NEW).status_code == 202
    assert deliver(hooks, insert(45), secret=OLD).status_code == 202


@pytest.mark.parametrize(
    "how",
    [
        pytest.param({"secret": "whsec_" + base64.b64encode(b"x" * 32).decode()}, id="wrong-secret"),
        pytest.param({"offset": -600}, id="stale"),
        pytest.param({"offset": 600}, id="from-the-future"),
    ],
)
def test_a_bad_signature_is_a_401_that_says_nothing_more_and_starts_nothing(
    hooks: ApiServer, how: dict[str, Any]
) -> None:
    # A timestamp's offset is taken from now, not from when the tests were collected (minutes earlier
    # in a whole run: +600 s would have become +150 s, inside the tolerance).
    options = dict(how)
    if "offset" in options:
        options["at"] = time.time() + options.pop("offset")
    answer = deliver(hooks, insert(46), **options)
    assert answer.status_code == 401
    assert error_of(answer) == {"type": "NotAuthenticated", "message": "the delivery's signature does not verify"}
    assert "ship-46" not in hooks.orchestra.effects()


def test_unsigned_and_tampered_deliveries(hooks: ApiServer) -> None:
    with hooks.http(scope="admin") as http:  # a bearer token is no signature
        answer = http.post("/v1/hooks/db-changes", json=insert(47))
    assert answer.status_code == 401
    body = json.dumps(insert(47))
    headers = {"webhook-id": "msg_t", "webhook-timestamp": str(int(time.time())), "content-type": "application/json"}
    headers["webhook-signature"] = Signer(OLD).sign("msg_t", datetime.now(UTC), body)
    with hooks.http(scope=None) as http:
        tampered = http.post("/v1/hooks/db-changes", content=body.replace("47", "48"), headers=headers)
    assert tampered.status_code == 401


def test_a_body_that_does_not_fit_is_a_422_naming_the_field_and_starts_nothing(hooks: ApiServer) -> None:
    missing = deliver(hooks, {"table": "orders", "type": "INSERT", "record": {}})
    assert missing.status_code == 422 and error_of(missing)["field"] == "event.record.id"
    mistyped = deliver(hooks, insert("forty-nine"))
    assert mistyped.status_code == 422 and error_of(mistyped)["field"] == "params.order_id"
    with hooks.client() as client:
        runs = list(client.runs(workflow="orders"))
    assert all(run.params.get("order_id") != "forty-nine" for run in runs)


def test_unknown_hook_is_a_404(hooks: ApiServer) -> None:
    with hooks.http(scope=None) as http:
        answer = http.post("/v1/hooks/nope", json={})
    assert answer.status_code == 404 and error_of(answer)["type"] == "WorkflowNotFound"


def test_a_github_delivery(hooks: ApiServer) -> None:
    body = json.dumps({"ref": "refs/heads/main", "after": "abc123"}).encode()
    digest = hmac.new(GITHUB_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "content-type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "X-Hub-Signature-256": f"sha256={digest}",
    }
    with hooks.http(scope=None) as http:
        answer = http.post("/v1/hooks/github", content=body, headers=headers)
        again = http.post("/v1/hooks/github", content=body, headers=headers)
        forged = http.post("/v1/hooks/github", content=body, headers={**headers, "X-Hub-Signature-256": "sha256=00"})
    assert (answer.status_code, again.status_code, forged.status_code) == (202, 200, 401)
    record = wait(hooks, answer.json()["run_id"])
    assert record.status.value == "succeeded" and record.params == {"ref": "refs/heads/main"}
    assert record.started_by == "hook:github/72d3162e-cc78-11e3-81ab-4c9367dc0958"


@pytest.mark.parametrize("page", ["README.md", "docs/api.md"])
def test_the_documented_shell_lines_sign_a_delivery_the_server_accepts(hooks: ApiServer, page: str) -> None:
    text = (ROOT / page).read_text(encoding="utf-8")
    block = re.search(r"```bash\n\s*(secret=whsec_.*?)```", text, re.S)
    assert block is not None, f"{page} has no signed-webhook example"
    script = textwrap.dedent(block.group(1)).replace("http://127.0.0.1:8000", hooks.url)
    done = subprocess.run(["bash", "-c", f"set -euo pipefail\n{script}"], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["runs"][0]["workflow"] == "documented", answer
    assert wait(hooks, answer["run_id"]).params == {"order_id": 42}
