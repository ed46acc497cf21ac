"""`POST /v1/customers/{id}/session-token`: the carrier's backend obtains a short-lived token
for its app, which then reads that customer's inbox and preferences without an API key."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from hub.api.auth import require
from hub.api.problems import Problem
from hub.customer_tokens import (
    DEFAULT_TTL_SECONDS,
    MAX_TTL_SECONDS,
    CustomerScope,
    issue_token,
)
from hub.customers import get_customer, is_erased, tombstone_key
from hub.keys import Principal, Scope

router = APIRouter(prefix="/v1/customers", tags=["customers"])
Writer = Annotated[Principal, Depends(require(Scope.CUSTOMERS_WRITE))]
CustomerId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[\w.:@+-]+$")]


class SessionTokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ttl_seconds: int = Field(default=DEFAULT_TTL_SECONDS, ge=60, le=MAX_TTL_SECONDS,
                             description="How long the token works (at most a day)")


class SessionTokenOut(BaseModel):
    token: str = Field(description="Send as `Authorization: Bearer <token>`")
    token_type: str = "Bearer"
    expires_at: datetime
    scopes: list[CustomerScope]


@router.post("/{customer_id}/session-token", response_model=SessionTokenOut,
             responses={410: {"description": "The customer was erased on request"}})
def post_session_token(customer_id: CustomerId, request: Request, who: Writer,
                       body: Annotated[SessionTokenIn | None, Body()] = None
                       ) -> SessionTokenOut:
    """A signed token for the customer's own app: that customer's inbox (and its stream)
    and preferences, nothing else. Nothing is stored; it dies at expiry or erasure."""
    settings = request.app.state.runtime.settings
    with request.app.state.runtime.db.sessions() as session:
        customer = get_customer(session, who.tenant, customer_id)
        if customer is None:
            if is_erased(session, who.tenant, tombstone_key(settings), customer_id):
                raise Problem(410, "erased", f"Customer {customer_id!r} was erased on request.")
            raise Problem(404, "not-found", f"No customer {customer_id!r}.")
        pk = customer.id
    ttl = body.ttl_seconds if body is not None else DEFAULT_TTL_SECONDS
    token, expires_at = issue_token(settings, who.tenant, customer_id, pk, ttl)
    return SessionTokenOut(token=token, expires_at=datetime.fromtimestamp(expires_at, UTC),
                           scopes=list(CustomerScope))
