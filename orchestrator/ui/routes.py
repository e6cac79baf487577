"""The web UI's routes under ``/ui``: login and logout, the pages, their static files, security headers.

Every response of the router carries the UI's security headers (:class:`SecureRoute`): a strict
Content-Security-Policy (scripts and styles only from files of this server, no inline code, no
framing), ``nosniff`` and ``Referrer-Policy``. Pages without a valid session redirect to the login;
the JSON the pages poll is in :mod:`orchestrator.ui.feeds`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import cache
from hashlib import sha256
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

import anyio
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute

from config import ApiToken, Scope, Settings
from orchestrator.api.auth import Caller
from orchestrator.api.runs import services
from orchestrator.api.workflows import summary
from orchestrator.engine.ports import RunQuery
from orchestrator.errors import NotAllowed, NotAuthenticated, RunNotFound, WorkflowNotFound
from orchestrator.ui import pages
from orchestrator.ui.session import CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, csrf_ok, csrf_token, login, sign, verify

STATIC = Path(__file__).parent / "static"
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
FORM_PATHS = frozenset({"/ui/login"})
"""Where the UI takes an HTML form's body (``application/x-www-form-urlencoded``) rather than JSON."""


class SecureRoute(APIRoute):
    """A route whose every response carries :data:`HEADERS`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def secured(request: Request) -> Response:
            response = await handler(request)
            for name, value in HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return secured


router = APIRouter(prefix="/ui", include_in_schema=False, route_class=SecureRoute)


def takes_form(path: str) -> bool:
    """Whether a POST to ``path`` is an HTML form the JSON-only rule of the API lets through."""
    return path in FORM_PATHS


@dataclass(frozen=True)
class Login:
    """A valid session: who, the token it was signed with, and the cookie's value."""

    caller: Caller
    token: ApiToken
    value: str


def session_of(request: Request) -> Login | None:
    settings: Settings = request.app.state.settings
    value = request.cookies.get(SESSION_COOKIE)
    found = verify(settings.api_tokens, value, time.time())
    return Login(found[0], found[1], value) if found and value else None


def logged_in(request: Request) -> Login:
    """A dependency for the JSON the pages read: the session, or a 401 in the API's error shape."""
    found = session_of(request)
    if found is None:
        raise NotAuthenticated("no valid session: log in at /ui/login")
    return found


def mutating(request: Request, session: Annotated[Login, Depends(logged_in)]) -> Login:
    """A dependency for cancel and retry: same origin, the CSRF token, and the admin scope."""
    origin = request.headers.get("origin")
    if origin is not None and origin.partition("://")[2] != request.headers.get("host", ""):
        raise NotAllowed(f"a request from {origin} may not change runs here")
    if not csrf_ok(session.token, session.value, request.cookies.get(CSRF_COOKIE), request.headers.get(CSRF_HEADER)):
        raise NotAllowed("the CSRF token is missing or wrong: reload the page and try again")
    caller = session.caller
    if not caller.scope.allows(Scope.ADMIN):
        raise NotAllowed(f"token {caller.name!r} has scope {caller.scope.value}; this needs admin")
    return session


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/ui/login?next={quote(target)}", status_code=303)


def _html(text: str, request: Request, session: Login | None = None, status: int = 200) -> HTMLResponse:
    response = HTMLResponse(text, status_code=status, headers={"Cache-Control": "no-store"})
    if session is not None:  # keep the CSRF cookie in step with the session (scripts read it)
        _csrf_cookie(response, session, secure=request.url.scheme == "https")
    return response


def _csrf_cookie(response: Response, session: Login, secure: bool) -> None:
    response.set_cookie(
        CSRF_COOKIE, csrf_token(session.token, session.value), path="/ui", samesite="strict", secure=secure
    )


def _safe_next(target: str | None) -> str:
    """Only a path of the UI: never another site (``//evil``) after a login."""
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/runs"


@router.get("/")
@router.get("")
def home() -> RedirectResponse:
    return RedirectResponse("/ui/runs", status_code=303)


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    return _html(pages.login(None, _safe_next(next)), request)


@router.post("/login")
async def login_submit(request: Request) -> Response:
    """Check the token of the form and set the session cookie (HttpOnly, SameSite=Strict, Secure on https)."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=10)
    presented = (form.get("token") or [""])[0]
    target = _safe_next((form.get("next") or [""])[0])
    settings: Settings = request.app.state.settings
    token = login(settings.api_tokens, presented)
    if token is None:
        return _html(pages.login("That token is not valid.", target), request, status=401)
    expires = int(time.time() + settings.ui.session_hours * 3600)
    value = sign(token, expires)
    secure = request.url.scheme == "https"
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE, value, max_age=expires - int(time.time()), path="/ui", httponly=True, samesite="strict",
        secure=secure,
    )  # fmt: skip
    _csrf_cookie(response, Login(Caller(token.name, token.scope), token, value), secure)
    return response


@router.get("/logout")
@router.post("/logout")
def logout() -> RedirectResponse:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/ui")
    response.delete_cookie(CSRF_COOKIE, path="/ui")
    return response


@router.get("/runs")
def runs_page(request: Request) -> Response:
    session = session_of(request)
    if session is None:
        return _to_login(request)
    return _html(pages.runs(session.caller, dict(request.query_params)), request, session)


@router.get("/runs/{run_id}")
async def run_page(run_id: str, request: Request) -> Response:
    session = session_of(request)
    if session is None:
        return _to_login(request)
    try:
        found = await anyio.to_thread.run_sync(services(request).store.runs.summary, run_id)
    except RunNotFound:
        return _html(pages.not_found(session.caller, f"no run {run_id!r}"), request, session, 404)
    return _html(pages.run(session.caller, found), request, session)


@router.get("/workflows")
def workflows_page(request: Request) -> Response:
    session = session_of(request)
    if session is None:
        return _to_login(request)
    registry = services(request).registry()
    found = [summary(registry.workflows[n]) for n in sorted(registry.workflows)]
    return _html(pages.workflows(session.caller, found), request, session)


@router.get("/workflows/{name}")
def workflow_page(name: str, request: Request) -> Response:
    session = session_of(request)
    if session is None:
        return _to_login(request)
    svc = services(request)
    try:
        workflow = svc.registry().get(name)
    except WorkflowNotFound as exc:
        return _html(pages.not_found(session.caller, str(exc)), request, session, 404)
    recent = svc.store.runs.page(RunQuery(workflow=name, limit=20)).runs
    return _html(pages.workflow(session.caller, summary(workflow), recent), request, session)


@cache
def _static(name: str) -> tuple[bytes, str, str] | None:
    path = STATIC / name
    if "/" in name or name.startswith(".") or path.suffix not in TYPES or not path.is_file():
        return None
    body = path.read_bytes()
    return body, TYPES[path.suffix], f'"{sha256(body).hexdigest()[:16]}"'


@router.get("/static/{name}")
def static(name: str, request: Request) -> Response:
    """The pages' scripts and styles (files of this package; no CDN), revalidated by ETag."""
    found = _static(name)
    if found is None:
        return Response(status_code=404)
    body, kind, tag = found
    headers = {"ETag": tag, "Cache-Control": "no-cache"}
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type=kind, headers=headers)
