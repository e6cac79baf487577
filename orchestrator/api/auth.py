"""Who calls: bearer tokens from ``ORCH_API_TOKENS``, each with a name (the actor) and a scope.

Tokens are compared in constant time, every configured token every time, so neither the answer
nor its timing tells a caller how close a guess was. A missing or unknown token is a 401; a token
whose scope does not allow the operation is a 403.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from config import ApiToken, Scope
from orchestrator.errors import NotAllowed, NotAuthenticated

bearer = HTTPBearer(auto_error=False, description="A token of ORCH_API_TOKENS (name:token[:scope]).")


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the token's name and scope."""

    name: str
    scope: Scope

    @property
    def actor(self) -> str:
        """What runs and their histories record as who acted: ``token:<name>``."""
        return f"token:{self.name}"


def identify(tokens: tuple[ApiToken, ...], presented: str | None) -> Caller:
    """The caller a presented token belongs to.

    Raises:
        NotAuthenticated: no token, or none that matches.
    """
    given = (presented or "").encode()
    match: ApiToken | None = None
    for token in tokens:  # every one, whatever matched: constant time in the answer
        if hmac.compare_digest(given, token.token.get_secret_value().encode()):
            match = token
    if not presented or match is None:
        raise NotAuthenticated("a valid bearer token is needed: Authorization: Bearer <token>")
    return Caller(match.name, match.scope)


def requires(scope: Scope) -> Callable[..., Caller]:
    """A dependency that authenticates the request and checks its token allows ``scope``."""

    def dependency(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> Caller:
        caller = identify(request.app.state.settings.api_tokens, credentials.credentials if credentials else None)
        if not caller.scope.allows(scope):
            raise NotAllowed(f"token {caller.name!r} has scope {caller.scope.value}; this needs {scope.value}")
        return caller

    return dependency
