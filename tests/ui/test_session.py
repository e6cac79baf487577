"""UI sessions: signed with the token's secret, expiring, ended by rotation; the CSRF double submit."""

from __future__ import annotations

from pydantic import SecretStr

from config import ApiToken, Scope
from orchestrator.ui.session import csrf_ok, csrf_token, login, sign, verify

OPS = ApiToken(name="ops", token=SecretStr("s3cret-ops"), scope=Scope.ADMIN)
READER = ApiToken(name="svc.read", token=SecretStr("s3cret-read"), scope=Scope.READ)
TOKENS = (OPS, READER)
NOW = 1_700_000_000


def test_a_session_names_its_token_and_holds_no_secret() -> None:
    value = sign(OPS, NOW + 60)
    assert value.startswith("ops.1700000060.")
    assert "s3cret" not in value
    found = verify(TOKENS, value, NOW)
    assert found is not None
    caller, token = found
    assert (caller.name, caller.scope, token) == ("ops", Scope.ADMIN, OPS)


def test_a_name_with_dots_still_parses() -> None:
    found = verify(TOKENS, sign(READER, NOW + 60), NOW)
    assert found is not None and found[0].name == "svc.read"


def test_an_expired_session_is_refused() -> None:
    value = sign(OPS, NOW + 60)
    assert verify(TOKENS, value, NOW + 60) is None
    assert verify(TOKENS, value, NOW + 61) is None


def test_rotating_the_token_ends_its_sessions() -> None:
    value = sign(OPS, NOW + 60)
    rotated = ApiToken(name="ops", token=SecretStr("new-secret"), scope=Scope.ADMIN)
    assert verify((rotated, READER), value, NOW) is None
    assert verify((rotated, OPS), value, NOW) is not None  # both entries during a rotation


def test_a_tampered_session_is_refused() -> None:
    value = sign(READER, NOW + 60)
    name, expiry, mac = value.rsplit(".", 2)
    assert verify(TOKENS, f"ops.{expiry}.{mac}", NOW) is None  # another name, same mac
    assert verify(TOKENS, f"{name}.{int(expiry) + 3600}.{mac}", NOW) is None  # a longer life
    for broken in ("", "ops", "ops.123", "ops.x.y", f"{value}x", "..."):
        assert verify(TOKENS, broken, NOW) is None


def test_the_login_takes_a_configured_token_only() -> None:
    assert login(TOKENS, "s3cret-read") == READER
    assert login(TOKENS, "s3cret") is None
    assert login(TOKENS, "") is None


def test_the_csrf_header_must_match_the_cookie_and_the_session() -> None:
    session = sign(OPS, NOW + 60)
    good = csrf_token(OPS, session)
    assert csrf_ok(OPS, session, good, good)
    assert not csrf_ok(OPS, session, good, None)
    assert not csrf_ok(OPS, session, None, good)
    assert not csrf_ok(OPS, session, good, good[:-1] + "x")
    planted = "attacker-chosen"
    assert not csrf_ok(OPS, session, planted, planted)  # a cookie set by another site does not pair
    assert not csrf_ok(OPS, sign(OPS, NOW + 61), good, good)  # bound to its session
