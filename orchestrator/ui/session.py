"""UI sessions: a signed cookie per login, and the CSRF token that goes with it. Pure, no web framework.

A session is ``name.expiry.mac``: the token's name, when it ends (epoch seconds) and an HMAC of
both keyed by that token's secret. The raw token is never stored in the browser, and rotating a
token (a new secret under the same name) ends every session it signed. The CSRF token is derived
from the session the same way, so a cookie planted by another site cannot pair with a forged header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable

from config import ApiToken
from orchestrator.api.auth import Caller

SESSION_COOKIE = "orch_session"
CSRF_COOKIE = "orch_csrf"
CSRF_HEADER = "X-CSRF-Token"
_SESSION_PURPOSE = b"orch-ui-session:"
_CSRF_PURPOSE = b"orch-ui-csrf:"


def _mac(token: ApiToken, purpose: bytes, message: str) -> str:
    key = token.token.get_secret_value().encode()
    digest = hmac.new(key, purpose + message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(token: ApiToken, expires: int) -> str:
    """The session value for a login with ``token`` that ends at ``expires`` (epoch seconds)."""
    body = f"{token.name}.{expires}"
    return f"{body}.{_mac(token, _SESSION_PURPOSE, body)}"


def verify(tokens: Iterable[ApiToken], value: str | None, now: float) -> tuple[Caller, ApiToken] | None:
    """The caller a session value belongs to, or None when it is malformed, forged, expired or rotated out.

    Every token of that name is tried (two entries with one name is a rotation in progress).
    """
    if not value or value.count(".") < 2:
        return None
    body, _, mac = value.rpartition(".")
    name, _, expiry = body.rpartition(".")
    if not expiry.isdigit() or int(expiry) <= now:
        return None
    found: tuple[Caller, ApiToken] | None = None
    for token in tokens:
        if token.name == name and hmac.compare_digest(mac.encode(), _mac(token, _SESSION_PURPOSE, body).encode()):
            found = (Caller(token.name, token.scope), token)
    return found


def csrf_token(token: ApiToken, session: str) -> str:
    """The CSRF token of a session: the ``orch_csrf`` cookie, echoed by scripts in ``X-CSRF-Token``."""
    return _mac(token, _CSRF_PURPOSE, session)


def csrf_ok(token: ApiToken, session: str, cookie: str | None, header: str | None) -> bool:
    """Whether a mutation carries the double-submitted token: the header equals the cookie and the session's."""
    if not cookie or not header:
        return False
    expected = csrf_token(token, session).encode()
    return hmac.compare_digest(header.encode(), cookie.encode()) and hmac.compare_digest(header.encode(), expected)


def login(tokens: Iterable[ApiToken], presented: str) -> ApiToken | None:
    """The token a login form presented (compared in constant time against every one), or None."""
    given = presented.encode()
    match: ApiToken | None = None
    for token in tokens:
        if hmac.compare_digest(given, token.token.get_secret_value().encode()):
            match = token
    return match if presented else None
