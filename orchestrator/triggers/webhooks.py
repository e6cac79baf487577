"""Webhooks: verify a delivery's signature over its raw body, then map its JSON body to a run's params.

Two schemes, chosen per hook in the workflow's ``webhook:`` section:

- ``standard``, `Standard Webhooks <https://www.standardwebhooks.com>`_: the headers
  ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature: v1,<base64>`` (several,
  space-separated, while a sender rotates keys), an HMAC-SHA256 of ``id.timestamp.body`` keyed
  with the decoded bytes of a ``whsec_<base64>`` secret; a timestamp more than five minutes away
  is refused. Verification is the spec's reference library (``standardwebhooks``).
- ``github``: ``X-Hub-Signature-256: sha256=<hex>``, an HMAC-SHA256 of the body keyed with the
  secret's text, and ``X-GitHub-Delivery`` as the delivery id.

A hook's secrets are every value its secret name has (``ORCH_WEBHOOK_SECRETS``: two entries with
one name are both valid while a secret is rotated). Every secret is tried, in constant time, and
every failure reads the same: a caller learns nothing about which part was wrong.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook as StandardWebhook

from orchestrator.definition.expressions import evaluate, parse_expression
from orchestrator.definition.models import Webhook, WebhookScheme
from orchestrator.definition.references import render
from orchestrator.errors import InvalidArgument, NotAuthenticated
from orchestrator.triggers.payload import resolver

MAX_DELIVERY_ID = 200
NOT_VERIFIED = "the delivery's signature does not verify"
BODY = "the delivery's body does not fit the hook"


@dataclass(frozen=True)
class Delivery:
    """A verified delivery: its id (what makes a re-delivery start nothing new) and its JSON body."""

    delivery_id: str
    event: Any

    def started_by(self, hook: str) -> str:
        """Who a run it starts records as its starter: ``hook:<name>/<delivery id>``."""
        return f"hook:{hook}/{self.delivery_id}"

    def idempotency_key(self, hook: str) -> str:
        return f"hook:{hook}:{self.delivery_id}"


def verify(hook: Webhook, secrets: Sequence[SecretStr], body: bytes, headers: Mapping[str, str]) -> Delivery:
    """Check a delivery's signature over ``body`` (before it is parsed) and parse it.

    Args:
        hook: The hook's section (its scheme).
        secrets: Every valid secret of the hook's secret name.
        body: The raw request body.
        headers: The request headers (any case).

    Raises:
        NotAuthenticated: no secret, a missing or malformed header, a stale timestamp, or no
            signature that matches; the message is the same for all of them.
        InvalidArgument: the signature verifies but the body is not JSON text.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    if hook.scheme is WebhookScheme.GITHUB:
        delivery_id = lowered.get("x-github-delivery", "")
        verified = _github(secrets, body, lowered.get("x-hub-signature-256", ""))
    else:
        delivery_id = lowered.get("webhook-id", "")
        verified = _standard(secrets, body, lowered)
    if not verified or not delivery_id or len(delivery_id) > MAX_DELIVERY_ID:
        raise NotAuthenticated(NOT_VERIFIED)
    try:
        event = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidArgument(f"the body is not JSON text: {exc}", "body") from None
    return Delivery(delivery_id, event)


def _standard(secrets: Sequence[SecretStr], body: bytes, headers: Mapping[str, str]) -> bool:
    verified = False
    for secret in secrets:  # every one, whatever matched
        try:
            StandardWebhook(secret.get_secret_value()).verify(body, dict(headers), json_parse=False)
            verified = True
        except Exception:  # noqa: BLE001, S112 - any malformed header, base64 or key is "does not verify"
            continue
    return verified


def _github(secrets: Sequence[SecretStr], body: bytes, header: str) -> bool:
    scheme, _, presented = header.partition("=")
    verified = False
    for secret in secrets:
        expected = hmac.new(secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()
        verified |= hmac.compare_digest(expected.encode(), presented.encode())
    return verified and scheme == "sha256"


def wanted(hook: Webhook, event: Any) -> bool:
    """Whether the hook's ``when`` filter holds for this event (no filter: always).

    Raises:
        InvalidArgument: the filter names a field the event lacks (``field`` names it).
    """
    if hook.when is None:
        return True
    return evaluate(parse_expression(hook.when), resolver(event, BODY))


def params_of(hook: Webhook, event: Any) -> dict[str, Any]:
    """The run's params: the hook's ``params`` with ``${event...}`` filled from the body.

    Raises:
        InvalidArgument: a referenced field is not in the body (``field`` names it).
    """
    rendered = render(hook.params, resolver(event, BODY))
    assert isinstance(rendered, dict)
    return rendered
