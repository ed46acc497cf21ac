"""Customer profiles, preferences, consent ledger, push subscriptions, GDPR export/erasure."""

from __future__ import annotations

from datetime import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import BaseModel, ConfigDict, EmailStr, Field, HttpUrl
from sqlalchemy import select
from sqlalchemy.orm import Session

from channels.push_endpoints import PushEndpointError, check_subscription
from hub.api.auth import require
from hub.api.problems import Problem
from hub.consents import ClaimedTime, record_consent
from hub.customers import (
    EndpointTaken,
    active_push_subscriptions,
    consent_entries,
    get_customer,
    is_erased,
    save_push_subscription,
    set_email,
    set_phone,
    tombstone_key,
    touch_details,
)
from hub.db import retry_on_conflict
from hub.events import event_types
from hub.gdpr import consent_json, erase, export_customer, forget_outside_store, state_json
from hub.keys import Principal, Scope
from hub.links import preference_link
from hub.models import Customer, PushSubscriptionRow
from hub.traits import Traits
from preferences import (
    SUPPORTED_LOCALES,
    AddressError,
    ConsentAction,
    ConsentSource,
    Frequency,
    LegalBasis,
    Preferences,
    Purpose,
    QuietHours,
    check_locale,
    check_time_zone,
    normalize_phone,
    preferences_from_json,
    preferences_to_json,
)

router = APIRouter(prefix="/v1/customers", tags=["customers"])
Writer = Annotated[Principal, Depends(require(Scope.CUSTOMERS_WRITE))]
CustomerId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[\w.:@+-]+$")]
Channel = Literal["sms", "email", "push"]
CategoryName = Literal["transactional", "loyalty", "marketing", "feedback"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CustomerIn(_Strict):
    """A full profile: fields left out are reset to their defaults (PUT replaces)."""

    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    locale: Annotated[str, Field(max_length=16)] = "pl"
    tone: Literal["formal", "informal"] = "formal"
    time_zone: Annotated[str, Field(max_length=64)] = "Europe/Warsaw"
    segment: Literal["individual", "business"] = "individual"
    phone: Annotated[str, Field(max_length=32)] | None = None
    phone_verified: bool = False
    email: EmailStr | None = None
    email_verified: bool = False
    traits: Traits | None = None  # replaced whole, like every other field of a PUT


class QuietHoursIn(_Strict):
    start: time
    end: time


class PreferencesIn(_Strict):
    """Per category an ordered channel list (first = preferred); left-out categories get the
    defaults; an empty list means no channel for that category."""

    channels: dict[CategoryName, list[Channel]] = Field(default_factory=dict)
    event_opt_outs: list[str] = Field(default_factory=list, max_length=50)
    quiet_hours: QuietHoursIn | None = None
    frequency: Frequency = Frequency.ALL
    locale: Annotated[str, Field(max_length=16)] | None = None
    tone: Literal["formal", "informal"] | None = None


class ConsentIn(_Strict):
    purpose: Purpose
    channel: Channel
    action: ConsentAction
    legal_basis: LegalBasis = LegalBasis.CONSENT
    source: ConsentSource
    text_version: Annotated[str, Field(max_length=64)] | None = None
    at: ClaimedTime | None = None  # evidence only; never orders the ledger


class PushKeys(_Strict):
    p256dh: Annotated[str, Field(min_length=16, max_length=256, pattern=r"^[A-Za-z0-9_=-]+$")]
    auth: Annotated[str, Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_=-]+$")]


class PushSubscriptionIn(BaseModel):
    """The browser's PushSubscription.toJSON()."""

    model_config = ConfigDict(populate_by_name=True)
    endpoint: HttpUrl
    expiration_time: int | None = Field(default=None, alias="expirationTime")
    keys: PushKeys


class PushEndpoint(BaseModel):
    endpoint: HttpUrl


def _invalid(path: str, exc: AddressError, **extra: Any) -> Problem:
    return Problem(422, "validation", f"{path}: {exc}",
                   errors=[{"path": path, "message": str(exc), "code": str(exc.problem)}],
                   **extra)


def _locale(value: str, path: str = "locale") -> str:
    try:
        return check_locale(value)
    except AddressError as exc:
        raise _invalid(path, exc, supported_locales=list(SUPPORTED_LOCALES)) from exc


def _session(request: Request) -> Any:
    return request.app.state.runtime.db.transaction()


def _reader(request: Request) -> Any:
    """A read-only session (no write lock on SQLite)."""
    return request.app.state.runtime.db.sessions()


def _key(request: Request) -> str:
    return tombstone_key(request.app.state.runtime.settings)


def _existing(session: Session, request: Request, who: Principal, customer_id: str
              ) -> Customer:
    """The caller's tenant's customer; another tenant's is 404 as if it did not exist."""
    customer = get_customer(session, who.tenant, customer_id)
    if customer is not None:
        return customer
    if is_erased(session, who.tenant, _key(request), customer_id):
        raise Problem(410, "erased", f"Customer {customer_id!r} was erased on request.")
    raise Problem(404, "not-found", f"No customer {customer_id!r}.")


def customer_json(session: Session, customer: Customer) -> dict[str, Any]:
    """The profile as the API shows it."""
    subs = active_push_subscriptions(session, customer)
    return {
        "id": customer.external_id, "name": customer.name, "locale": customer.locale,
        "tone": customer.tone, "time_zone": customer.time_zone, "segment": customer.segment,
        "phone": customer.phone, "phone_verified": customer.phone_verified,
        "email": customer.email, "email_verified": customer.email_verified,
        "traits": customer.traits or {},
        "push_subscriptions": [{"id": s.id, "endpoint": s.endpoint,
                                "created_at": s.created_at.isoformat()} for s in subs],
        "created_at": customer.created_at.isoformat(),
        "updated_at": customer.updated_at.isoformat(),
    }


@router.put("/{customer_id}", responses={201: {"description": "Created"},
                                          410: {"description": "Erased on request"}})
@retry_on_conflict  # two PUTs of one new customer: one creates, the other updates
def put_customer(customer_id: CustomerId, body: CustomerIn, request: Request,
                 response: Response, who: Writer) -> dict[str, Any]:
    """Creates or replaces a profile; the phone must be a valid mobile number (stored E.164)."""
    locale = _locale(body.locale)
    try:
        zone = check_time_zone(body.time_zone)
    except AddressError as exc:
        raise _invalid("time_zone", exc) from exc
    try:
        phone = normalize_phone(body.phone) if body.phone else None
    except AddressError as exc:
        raise _invalid("phone", exc) from exc
    with _session(request) as session:
        if is_erased(session, who.tenant, _key(request), customer_id):
            raise Problem(410, "erased", f"Customer {customer_id!r} was erased on request; "
                          "use a new id for a new customer.")
        customer = get_customer(session, who.tenant, customer_id)
        if customer is None:
            customer = Customer(tenant=who.tenant, external_id=customer_id, preferences={})
            session.add(customer)
            response.status_code = 201
        touch_details(customer)  # newer than any earlier event's inline details
        customer.name, customer.locale, customer.tone = body.name, locale, body.tone
        customer.time_zone, customer.segment = zone, body.segment
        set_phone(customer, phone, body.phone_verified)
        set_email(customer, str(body.email) if body.email else None, body.email_verified)
        customer.traits = body.traits or None
        session.flush()
        return customer_json(session, customer)


@router.get("/{customer_id}")
def get_customer_route(customer_id: CustomerId, request: Request, who: Writer
                       ) -> dict[str, Any]:
    """The profile with its addresses and active push subscriptions."""
    with _reader(request) as session:
        return customer_json(session, _existing(session, request, who, customer_id))


@router.delete("/{customer_id}", status_code=204)
def delete_customer(customer_id: CustomerId, request: Request, who: Writer) -> Response:
    """Erases the customer's personal data everywhere and keeps a tombstone (idempotent)."""
    runtime = request.app.state.runtime
    erasure = erase(runtime.db, who.tenant, _key(request), customer_id,
                    in_flight_seconds=runtime.settings.send_window_seconds)
    if erasure is None:
        raise Problem(404, "not-found", f"No customer {customer_id!r}.")
    stages = runtime.pipeline.stages
    forget_outside_store(erasure, stages.limiter, stages.transports)
    return Response(status_code=204)


@router.get("/{customer_id}/export")
def export_route(customer_id: CustomerId, request: Request, who: Writer) -> dict[str, Any]:
    """Everything held about the customer (GDPR access / portability)."""
    with _reader(request) as session:
        _existing(session, request, who, customer_id)
        data = export_customer(session, who.tenant, _key(request), customer_id)
    assert data is not None
    limiter = request.app.state.runtime.pipeline.stages.limiter
    outside = getattr(limiter, "export", None)  # counters kept in Redis, if any
    if outside is not None:
        data["throttling"]["backend"] = outside(data["throttling"]["customer_key"])
    return data


@router.get("/{customer_id}/preferences")
def get_preferences(customer_id: CustomerId, request: Request, who: Writer
                    ) -> dict[str, Any]:
    """Channels per category, opt-outs, quiet hours, frequency, language and tone."""
    with _reader(request) as session:
        customer = _existing(session, request, who, customer_id)
        return preferences_json(customer)


def preferences_json(customer: Customer) -> dict[str, Any]:
    doc = preferences_to_json(preferences_from_json(customer.preferences))
    return {**doc, "locale": customer.locale, "tone": customer.tone,
            "time_zone": customer.time_zone}


@router.put("/{customer_id}/preferences")
def put_preferences(customer_id: CustomerId, body: PreferencesIn, request: Request,
                    who: Writer) -> dict[str, Any]:
    """Replaces the preferences (left-out categories get the defaults)."""
    for category, order in body.channels.items():
        if len(set(order)) != len(order):
            raise Problem(422, "validation", f"channels/{category}: a channel is listed twice")
    unknown = sorted(set(body.event_opt_outs) - set(event_types()))
    if unknown:
        raise Problem(422, "validation", f"event_opt_outs: unknown event types {unknown}")
    default = Preferences()
    prefs = Preferences(
        channels={**default.channels, **{k: tuple(v) for k, v in body.channels.items()}},
        event_opt_outs=frozenset(body.event_opt_outs),
        quiet_hours=QuietHours(body.quiet_hours.start, body.quiet_hours.end)
        if body.quiet_hours else None,
        frequency=body.frequency,
    )
    locale = _locale(body.locale) if body.locale else None
    with _session(request) as session:
        customer = _existing(session, request, who, customer_id)
        # Keys besides the customer's own choices (operator `throttling` overrides) stay.
        customer.preferences = {**(customer.preferences or {}), **preferences_to_json(prefs)}
        customer.locale = locale or customer.locale
        customer.tone = body.tone or customer.tone
        return preferences_json(customer)


@router.get("/{customer_id}/consents")
def get_consents(customer_id: CustomerId, request: Request, who: Writer) -> dict[str, Any]:
    """The full ledger history and the current state derived from it."""
    with _reader(request) as session:
        _existing(session, request, who, customer_id)
        entries = consent_entries(session, who.tenant, customer_id)
        return {"history": [consent_json(e) for e in entries], "state": state_json(entries)}


@router.post("/{customer_id}/consents", status_code=201)
def post_consent(customer_id: CustomerId, body: ConsentIn, request: Request, who: Writer
                 ) -> dict[str, Any]:
    """Appends a grant or withdrawal to the ledger (rows are never changed afterwards)."""
    with _session(request) as session:
        _existing(session, request, who, customer_id)
        row = record_consent(session, customer_id, body.purpose, body.channel, body.action,
                             body.source, legal_basis=body.legal_basis,
                             text_version=body.text_version, at=body.at, tenant=who.tenant)
        entries = consent_entries(session, who.tenant, customer_id)
        recorded = next(consent_json(e) for e in entries if e.sequence == row.id)
        return {"recorded": recorded, "state": state_json(entries)}


@router.post("/{customer_id}/push-subscriptions", status_code=201)
def post_push(customer_id: CustomerId, body: PushSubscriptionIn, request: Request,
              who: Writer) -> dict[str, Any]:
    """Adds a browser push subscription (the PushSubscription JSON); several are allowed."""
    try:  # known push services only, and a sane expiry (channels/push_endpoints.py)
        expires = check_subscription(str(body.endpoint), body.expiration_time,
                                     request.app.state.runtime.settings.push_allowed_hosts)
    except PushEndpointError as exc:
        raise Problem(422, "validation", f"endpoint: {exc}", errors=[
            {"path": "endpoint", "message": str(exc), "code": str(exc.problem)}]) from exc
    with _session(request) as session:
        customer = _existing(session, request, who, customer_id)
        try:
            row = save_push_subscription(session, customer, str(body.endpoint),
                                         body.keys.p256dh, body.keys.auth, expires)
        except EndpointTaken as exc:
            raise Problem(409, "endpoint-taken", "This push endpoint is registered to another "
                          "customer; it must be removed there first.") from exc
        return {"id": row.id, "endpoint": row.endpoint, "active": row.active}


@router.delete("/{customer_id}/push-subscriptions", status_code=204)
def delete_push(customer_id: CustomerId, body: PushEndpoint, request: Request,
                who: Writer) -> Response:
    """Removes the subscription with this endpoint (body: `{"endpoint": ...}`)."""
    with _session(request) as session:
        customer = _existing(session, request, who, customer_id)
        row = session.scalar(select(PushSubscriptionRow).where(
            PushSubscriptionRow.customer_pk == customer.id,
            PushSubscriptionRow.endpoint == str(body.endpoint)))
        if row is None:
            raise Problem(404, "not-found", "No such push subscription for this customer.")
        session.delete(row)
    return Response(status_code=204)


@router.post("/{customer_id}/preference-link")
def post_preference_link(customer_id: CustomerId, request: Request, who: Writer
                         ) -> dict[str, Any]:
    """A signed, expiring preference-center link for the customer, to put into messages."""
    settings = request.app.state.runtime.settings
    with _session(request) as session:
        _existing(session, request, who, customer_id)
    return {"url": preference_link(settings, customer_id, who.tenant),
            "expires_in_days": settings.preference_link_days}

