"""Every error of the API in one JSON shape: ``{"error": {"type", "message", "field"?}}``.

An :class:`~orchestrator.errors.OrchestratorError` keeps its class name as ``type`` (the Python
client maps it back to the same class); the HTTP status comes from :data:`STATUS`, the one table.
Bad input is a 4xx, never a 5xx: a request that does not validate, malformed JSON, a body too
large or of the wrong type. A 503 means Redis or the broker cannot be reached, a 500 a bug.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from orchestrator.errors import (
    AccessError,
    ConfigurationError,
    DeadLetterNotFound,
    DefinitionError,
    InvalidArgument,
    InvalidParams,
    NotAllowed,
    NotAuthenticated,
    OrchestratorError,
    PlanNotFound,
    RunNotFound,
    RunStateError,
    ServiceUnavailable,
    WorkflowNotFound,
)

log = logging.getLogger(__name__)

STATUS: dict[type[OrchestratorError], int] = {
    InvalidParams: 422,
    InvalidArgument: 422,
    DefinitionError: 422,
    WorkflowNotFound: 404,
    RunNotFound: 404,
    PlanNotFound: 404,
    DeadLetterNotFound: 404,
    RunStateError: 409,
    NotAuthenticated: 401,
    NotAllowed: 403,
    AccessError: 403,
    ServiceUnavailable: 503,
    ConfigurationError: 500,
}
"""HTTP status by error class; the most specific class of an error wins, else 400."""


class ErrorDetail(BaseModel):
    type: str
    message: str
    field: str | None = None


class ErrorResponse(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


def error_response(status: int, kind: str, message: str, field: str | None = None, **headers: str) -> JSONResponse:
    body = ErrorResponse(error=ErrorDetail(type=kind, message=message, field=field))
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers or None)


def status_of(exc: OrchestratorError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def field_of(exc: OrchestratorError) -> str | None:
    if isinstance(exc, InvalidArgument):
        return exc.field
    if isinstance(exc, InvalidParams) and exc.problems:
        named = re.search(r"param '([^']+)'", exc.problems[0])
        return f"params.{named.group(1)}" if named else "params"
    return None


RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in {
        400: "Malformed request (a body that is not JSON)",
        401: "No valid token",
        403: "The token's scope does not allow it",
        404: "No such workflow or run",
        413: "The body is larger than ORCH_API__MAX_BODY_BYTES",
        415: "The body is not JSON",
        422: "Invalid params or arguments (`field` names the one)",
        503: "Redis or the broker cannot be reached",
    }.items()
}
"""The error responses every ``/v1`` route documents in the OpenAPI schema."""


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the one shape."""

    @app.exception_handler(OrchestratorError)
    async def orchestrator_error(request: Request, exc: OrchestratorError) -> JSONResponse:
        status = status_of(exc)
        if status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
        return error_response(status, type(exc).__name__, str(exc), field_of(exc), **headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
        if first.get("type") == "json_invalid":
            return error_response(400, "MalformedJSON", "the body is not valid JSON: " + str(first.get("msg")))
        loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path", "header")]
        message = "; ".join(f"{'.'.join(map(str, e.get('loc', ())[1:])) or 'body'}: {e.get('msg')}" for e in errors)
        return error_response(422, "InvalidRequest", message, ".".join(loc) or None)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        kind = {404: "NotFound", 405: "MethodNotAllowed", 413: "BodyTooLarge", 415: "UnsupportedMediaType"}
        return error_response(exc.status_code, kind.get(exc.status_code, "HTTPError"), str(exc.detail))

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return error_response(500, "InternalError", "the server failed; its log says why")
