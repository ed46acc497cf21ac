"""Authentication as FastAPI dependencies: API keys with scopes everywhere, and on one
customer's inbox and preference routes also that customer's session token."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select

from hub.api.problems import Problem
from hub.customer_tokens import CustomerScope, CustomerSession, is_customer_token, read_token
from hub.db import Database
from hub.keys import Principal, Scope
from hub.models import Customer

_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer hub_...` (an API "
                     "key) or, on a customer's inbox and preferences, `Bearer hubct1...` "
                     "(that customer's session token)")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="or `X-API-Key: hub_...`")


def _presented(bearer: HTTPAuthorizationCredentials | None, api_key: str | None) -> str:
    token = bearer.credentials if bearer else api_key
    if not token:
        raise Problem(401, "unauthorized", "An API key is required (Authorization: Bearer).")
    return token


async def _key_principal(request: Request, token: str, scope: Scope) -> Principal:
    if is_customer_token(token):
        raise Problem(403, "forbidden", "A customer session token reaches only that "
                      "customer's inbox and preferences.", required_scope=scope.value)
    verifier = request.app.state.runtime.verifier
    # A store lookup on every request (so a revocation is immediate): off the event loop.
    principal: Principal | None = await anyio.to_thread.run_sync(verifier.verify, token)
    if principal is None:
        raise Problem(401, "unauthorized", "The API key is unknown or revoked.")
    if not principal.allows(scope):
        raise Problem(403, "forbidden", f"This API key lacks the scope {scope.value!r}.",
                      required_scope=scope.value)
    return principal


def require(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits a valid key holding `scope` (or `admin`)."""

    async def dependency(
        request: Request,
        bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
        api_key: str | None = Depends(_header),
    ) -> Principal:
        return await _key_principal(request, _presented(bearer, api_key), scope)

    return dependency


def _customer_alive(db: Database, session: CustomerSession) -> bool:
    """The token's customer row still exists (an erasure deletes it)."""
    with db.sessions() as store:
        return store.scalar(select(Customer.id).where(
            Customer.id == session.customer_pk, Customer.tenant == session.tenant,
            Customer.external_id == session.customer_id)) is not None


def require_own(scope: Scope, customer_scope: CustomerScope
                ) -> Callable[..., Awaitable[Principal]]:
    """A dependency for the routes of one customer (path parameter `customer_id`): admits an
    API key holding `scope`, or that very customer's session token issued for
    `customer_scope` (another customer's token is 403)."""

    async def dependency(
        request: Request,
        bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
        api_key: str | None = Depends(_header),
    ) -> Principal:
        token = _presented(bearer, api_key)
        if not is_customer_token(token):
            return await _key_principal(request, token, scope)
        runtime = request.app.state.runtime
        session = read_token(runtime.settings, token)
        if session is None:
            raise Problem(401, "unauthorized", "The customer token is invalid or expired.")
        if (request.path_params.get("customer_id") != session.customer_id
                or not session.allows(customer_scope)):
            raise Problem(403, "forbidden", "This customer token is for another customer "
                          "or another area.")
        if not await anyio.to_thread.run_sync(_customer_alive, runtime.db, session):
            raise Problem(401, "unauthorized", "The customer token's customer no longer "
                          "exists.")
        return Principal("", "", frozenset(), session.tenant, customer=session)

    return dependency
