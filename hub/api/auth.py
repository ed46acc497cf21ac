"""API-key authentication and scope checks as FastAPI dependencies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from hub.api.problems import Problem
from hub.keys import Principal, Scope

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer hub_...`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="or `X-API-Key: hub_...`")


def require(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits a valid key holding `scope` (or `admin`)."""

    async def dependency(
        request: Request,
        bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
        api_key: str | None = Depends(_header),
    ) -> Principal:
        token = bearer.credentials if bearer else api_key
        if not token:
            raise Problem(401, "unauthorized", "An API key is required (Authorization: Bearer).")
        verifier = request.app.state.runtime.verifier
        # A store lookup on every request (so a revocation is immediate): off the event loop.
        principal = await anyio.to_thread.run_sync(verifier.verify, token)
        if principal is None:
            raise Problem(401, "unauthorized", "The API key is unknown or revoked.")
        if not principal.allows(scope):
            raise Problem(403, "forbidden", f"This API key lacks the scope {scope.value!r}.",
                          required_scope=scope.value)
        return principal

    return dependency
