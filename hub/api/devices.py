"""The carrier's app installations of a customer: `POST`/`GET /v1/customers/{id}/devices`,
`DELETE /v1/customers/{id}/devices/{device_id}` (scope customers:write)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from hub.api.customers import CustomerId, Writer
from hub.api.problems import Problem
from hub.customers import get_customer, is_erased, tombstone_key
from hub.db import retry_on_conflict
from hub.devices import (
    Platform,
    Registration,
    TokenError,
    device_json,
    devices_of,
    register,
    remove,
)
from hub.keys import Principal
from hub.models import Customer
from preferences import SUPPORTED_LOCALES

router = APIRouter(prefix="/v1/customers", tags=["customers"])
DeviceId = Annotated[int, Path(ge=1, le=2**62)]


class DeviceIn(BaseModel):
    """One installation of the carrier's app. The token is checked per platform: APNs 64
    hexadecimal characters, FCM printable ASCII up to 512 characters."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    platform: Platform
    token: Annotated[str, Field(min_length=1, max_length=4096)]
    app_id: Annotated[str, Field(min_length=1, max_length=200,
                                 pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")]
    app_version: Annotated[str, Field(min_length=1, max_length=64,
                                      pattern=r"^[\x21-\x7e]+$")] | None = None
    locale: Annotated[str, Field(max_length=16)] | None = None


def _customer(session: Any, request: Request, who: Principal, customer_id: str) -> Customer:
    """The caller's tenant's customer; another tenant's is 404 as if it did not exist."""
    customer = get_customer(session, who.tenant, customer_id)
    if customer is not None:
        return customer
    key = tombstone_key(request.app.state.runtime.settings)
    if is_erased(session, who.tenant, key, customer_id):
        raise Problem(410, "erased", f"Customer {customer_id!r} was erased on request.")
    raise Problem(404, "not-found", f"No customer {customer_id!r}.")


@router.post("/{customer_id}/devices", status_code=201,
             responses={200: {"description": "The token was known: moved or updated"}})
@retry_on_conflict  # two registrations of one new token at once: the loser updates
def post_device(customer_id: CustomerId, body: DeviceIn, request: Request, response: Response,
                who: Writer) -> dict[str, Any]:
    """Registers an app installation; re-registering a token updates it (and moves it to this
    customer: one token is one install) and makes it live again."""
    if body.locale is not None and body.locale not in SUPPORTED_LOCALES:
        raise Problem(422, "validation", f"locale: unsupported locale {body.locale!r}",
                      errors=[{"path": "locale", "message": "unsupported locale",
                               "code": "locale_unsupported"}],
                      supported_locales=list(SUPPORTED_LOCALES))
    reg = Registration(body.platform, body.token, body.app_id, body.app_version, body.locale)
    with request.app.state.runtime.db.transaction() as session:
        customer = _customer(session, request, who, customer_id)
        try:
            row, created = register(session, customer, reg)
        except TokenError as exc:
            raise Problem(422, "validation", f"token: {exc}", errors=[
                {"path": "token", "message": str(exc), "code": "token_invalid"}]) from exc
        response.status_code = 201 if created else 200
        return device_json(row)


@router.get("/{customer_id}/devices")
def get_devices(customer_id: CustomerId, request: Request, who: Writer) -> dict[str, Any]:
    """The customer's installations, live and deactivated (with the reason), tokens masked."""
    with request.app.state.runtime.db.sessions() as session:
        customer = _customer(session, request, who, customer_id)
        return {"devices": [device_json(row) for row in devices_of(session, customer)]}


@router.delete("/{customer_id}/devices/{device_id}", status_code=204)
def delete_device(customer_id: CustomerId, device_id: DeviceId, request: Request,
                  who: Writer) -> Response:
    """Removes one installation (the customer logged out of the app)."""
    with request.app.state.runtime.db.transaction() as session:
        customer = _customer(session, request, who, customer_id)
        if not remove(session, customer, device_id):
            raise Problem(404, "not-found", f"No device {device_id} for this customer.")
    return Response(status_code=204)
