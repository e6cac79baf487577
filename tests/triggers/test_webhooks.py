"""Webhook signatures: Standard Webhooks and GitHub's, rotation, staleness, and nothing that hints."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook as Signer

from orchestrator.definition.models import Webhook
from orchestrator.errors import InvalidArgument, NotAuthenticated
from orchestrator.triggers.webhooks import NOT_VERIFIED, params_of, verify, wanted

OLD = "whsec_" + base64.b64encode(b"old-key-" * 4).decode()
NEW = "whsec_" + base64.b64encode(b"new-key-" * 4).decode()
STANDARD = Webhook(name="orders", secret="orders")
GITHUB = Webhook(name="push", secret="gh", scheme="github")
BODY = json.dumps({"type": "INSERT", "record": {"id": 7}}).encode()


def signed(secret: str, body: bytes = BODY, *, at: float | None = None, msg_id: str = "msg_1") -> dict[str, str]:
    moment = datetime.fromtimestamp(at if at is not None else time.time(), UTC)
    signature = Signer(secret).sign(msg_id, moment, body.decode())
    return {"Webhook-Id": msg_id, "Webhook-Timestamp": str(int(moment.timestamp())), "Webhook-Signature": signature}


def secrets(*values: str) -> tuple[SecretStr, ...]:
    return tuple(SecretStr(v) for v in values)


def test_a_standard_delivery_verifies_and_parses() -> None:
    delivery = verify(STANDARD, secrets(OLD), BODY, signed(OLD))
    assert delivery.delivery_id == "msg_1" and delivery.event["record"]["id"] == 7
    assert delivery.started_by("orders") == "hook:orders/msg_1"


def test_rotation_two_secrets_of_the_receiver_and_two_signatures_of_the_sender() -> None:
    assert verify(STANDARD, secrets(OLD, NEW), BODY, signed(NEW)).delivery_id == "msg_1"
    both = signed(OLD)
    both["Webhook-Signature"] += " " + signed(NEW)["Webhook-Signature"]
    assert verify(STANDARD, secrets(NEW), BODY, both).delivery_id == "msg_1"


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda h, b: (h, b + b" "), id="body-changed"),
        pytest.param(lambda h, b: ({**h, "Webhook-Id": "msg_2"}, b), id="id-changed"),
        pytest.param(lambda h, b: ({k: v for k, v in h.items() if k != "Webhook-Signature"}, b), id="no-signature"),
        pytest.param(lambda h, b: ({k: v for k, v in h.items() if k != "Webhook-Id"}, b), id="no-id"),
        pytest.param(lambda h, b: ({**h, "Webhook-Signature": "v1"}, b), id="no-comma"),
        pytest.param(lambda h, b: ({**h, "Webhook-Signature": "v1,@@not base64@@"}, b), id="bad-base64"),
        pytest.param(lambda h, b: ({**h, "Webhook-Timestamp": "soon"}, b), id="bad-timestamp"),
        pytest.param(lambda h, b: ({**h, "Webhook-Signature": "v2," + h["Webhook-Signature"][3:]}, b), id="v2"),
        pytest.param(lambda h, b: (h, b"\xff\xfe"), id="not-utf8"),
    ],
)
def test_every_bad_delivery_is_refused_the_same_way(tamper: object) -> None:
    headers, body = tamper(signed(OLD), BODY)  # type: ignore[operator]
    with pytest.raises(NotAuthenticated) as refused:
        verify(STANDARD, secrets(OLD), body, headers)
    assert str(refused.value) == NOT_VERIFIED


@pytest.mark.parametrize("offset", [-301, 301])
def test_a_timestamp_more_than_five_minutes_away_is_refused(offset: int) -> None:
    with pytest.raises(NotAuthenticated):
        verify(STANDARD, secrets(OLD), BODY, signed(OLD, at=time.time() + offset))
    verify(STANDARD, secrets(OLD), BODY, signed(OLD, at=time.time() + offset * 0.9))


def test_a_wrong_secret_or_none_configured_is_refused() -> None:
    with pytest.raises(NotAuthenticated):
        verify(STANDARD, secrets(NEW), BODY, signed(OLD))
    with pytest.raises(NotAuthenticated):
        verify(STANDARD, (), BODY, signed(OLD))


def github(secret: str, body: bytes = BODY) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "X-GitHub-Delivery": "72d3162e", "X-GitHub-Event": "push"}


def test_github_preset() -> None:
    assert verify(GITHUB, secrets("s3cret", "next"), BODY, github("next")).delivery_id == "72d3162e"
    for headers in (
        github("wrong"),
        {**github("s3cret"), "X-Hub-Signature-256": "sha1=" + github("s3cret")["X-Hub-Signature-256"][7:]},
        {k: v for k, v in github("s3cret").items() if k != "X-GitHub-Delivery"},
    ):
        with pytest.raises(NotAuthenticated):
            verify(GITHUB, secrets("s3cret"), BODY, headers)


def test_a_signed_body_that_is_not_json_is_a_422_naming_the_body() -> None:
    body = b"not json"
    with pytest.raises(InvalidArgument) as refused:
        verify(STANDARD, secrets(OLD), body, signed(OLD, body))
    assert refused.value.field == "body"


def test_filter_and_params_name_the_missing_field() -> None:
    hook = Webhook(name="db", secret="db", when="${event.type} == 'INSERT'", params={"order_id": "${event.record.id}"})
    assert wanted(hook, {"type": "INSERT"}) and not wanted(hook, {"type": "DELETE"})
    assert params_of(hook, {"record": {"id": 3}}) == {"order_id": 3}
    with pytest.raises(InvalidArgument) as missing:
        params_of(hook, {"record": {}})
    assert missing.value.field == "event.record.id"
    with pytest.raises(InvalidArgument):
        wanted(hook, {"table": "orders"})
