"""The typed render context: built from plain event and profile dicts, read by templates.

Optional parcel parts are None when absent; printing a None is an error (see renderer), so
a template that needs a pickup code fails at preview time instead of sending "None".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in a currency (COD, customs duty)."""

    amount: Decimal
    currency: str
    pay_url: str | None = None


@dataclass(frozen=True, slots=True)
class Eta:
    """The announced delivery window."""

    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class PickupPoint:
    """Where a parcel waits, with its code and the last moment to collect it."""

    id: str
    name: str
    address: str | None = None
    code: str | None = None
    deadline: datetime | None = None


@dataclass(frozen=True, slots=True)
class Links:
    """Links a message may carry."""

    track: str | None = None
    reschedule: str | None = None
    redirect: str | None = None
    preferences: str | None = None
    unsubscribe: str | None = None
    feedback: str | None = None  # the 0-10 rating page (one short link: SMS, push)
    ratings: tuple[str, ...] = ()  # one-tap links for scores 0..10 (e-mail)


@dataclass(frozen=True, slots=True)
class Parcel:
    """The parcel an event is about (empty tracking number for loyalty and marketing)."""

    tracking_number: str = ""
    carrier: str | None = None
    eta: Eta | None = None
    pickup_point: PickupPoint | None = None
    cod: Money | None = None
    customs: Money | None = None


@dataclass(frozen=True, slots=True)
class Customer:
    """Who reads the message, as far as wording needs: name and segment only."""

    name: str | None = None
    first_name: str | None = None
    segment: str = "individual"

    @property
    def business(self) -> bool:
        return self.segment == "business"


@dataclass(frozen=True, slots=True)
class Brand:
    """The sender's identity in messages and the e-mail layout."""

    name: str = "Parcel Hub"
    color: str = "#d4001a"
    text_color: str = "#ffffff"
    logo_url: str | None = None
    footer_address: str = "Parcel Hub sp. z o.o., ul. Prosta 20, 00-850 Warszawa"
    preference_url: str = "https://parcelhub.example/preferences"
    help_url: str = "https://parcelhub.example/help"


@dataclass(frozen=True, slots=True)
class RenderContext:
    """Everything a template may read; built once per event and channel."""

    event_type: str
    occurred_at: datetime
    now: datetime
    parcel: Parcel
    links: Links
    customer: Customer
    brand: Brand
    time_zone: str = "Europe/Warsaw"
    data: dict[str, Any] = field(default_factory=dict)
    items: tuple[dict[str, Any], ...] = ()


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


# The largest amount the formatters are asked to print (intake allows 12 + 4 digits).
MAX_AMOUNT = Decimal("1e12")


def _money(raw: dict[str, Any] | None) -> Money | None:
    if not raw:
        return None
    try:
        amount = Decimal(str(raw["amount"]))
    except ArithmeticError as exc:  # InvalidOperation: not a number at all
        raise ValueError(f"amount {raw['amount']!r} is not a decimal") from exc
    if not amount.is_finite() or not 0 <= amount < MAX_AMOUNT:
        raise ValueError("amount must be finite, non-negative and below 10^12")
    return Money(amount, str(raw["currency"]), raw.get("pay_url"))


def _parcel(raw: dict[str, Any]) -> Parcel:
    eta = raw.get("eta")
    point = raw.get("pickup_point")
    return Parcel(
        tracking_number=str(raw.get("tracking_number") or ""),
        carrier=raw.get("carrier"),
        eta=Eta(_time(eta["from"]), _time(eta["to"])) if eta else None,  # type: ignore[arg-type]
        pickup_point=PickupPoint(
            id=point["id"], name=point.get("name") or point["id"], address=point.get("address"),
            code=point.get("code"), deadline=_time(point.get("deadline")),
        ) if point else None,
        cod=_money(raw.get("cod")),
        customs=_money(raw.get("customs")),
    )


# Previews and tests render without a link factory: stand-ins as long as real links.
SAMPLE_FEEDBACK_URL = "https://parcelhub.example/f/1x2y3z.ex3k8.SAMPLEsampleSAMP"


def _feedback_links(given: Mapping[str, str | None], sample: bool) -> tuple[str | None, tuple[str, ...]]:
    """The rating links the factory gave (`feedback`, `rate_0`..`rate_10`), or stand-ins
    when rendering without a factory; a factory that gives none leaves them empty, so a
    feedback template fails to render rather than send a dead link."""
    if sample:
        return SAMPLE_FEEDBACK_URL, tuple(
            SAMPLE_FEEDBACK_URL.replace("ex3", f"e{s:x}3") for s in range(11))
    ratings = tuple(given.get(f"rate_{s}") or "" for s in range(11))
    return given.get("feedback"), ratings if all(ratings) else ()


def build_context(
    payload: dict[str, Any],
    profile: dict[str, Any],
    *,
    now: datetime,
    brand: Brand | None = None,
    links: Links | dict[str, str] | None = None,
    items: list[dict[str, Any]] | None = None,
) -> RenderContext:
    """The context for one event payload (wire shape) and profile (name, segment, time_zone);
    `links` carries the customer's preference/unsubscribe URLs (default: the brand's
    preference center); `items` are the held payloads a digest combines."""
    given = links if isinstance(links, dict) else {
        "preferences": links.preferences, "unsubscribe": links.unsubscribe} if links else {}
    brand = brand or Brand()
    feedback, ratings = _feedback_links(given, sample=links is None)
    raw_parcel = payload.get("parcel") or {}
    raw_links = raw_parcel.get("links") or {}
    name = profile.get("name") or None
    segment = profile.get("segment") or "individual"
    return RenderContext(
        event_type=str(payload["type"]),
        occurred_at=_time(payload["occurred_at"]) or now,
        now=now,
        parcel=_parcel(raw_parcel),
        links=Links(
            track=raw_links.get("track"),
            reschedule=raw_links.get("reschedule") or raw_links.get("redirect"),
            redirect=raw_links.get("redirect"),
            preferences=given.get("preferences") or brand.preference_url,
            unsubscribe=given.get("unsubscribe"),
            feedback=feedback,
            ratings=ratings,
        ),
        customer=Customer(name, name.split()[0] if name and segment != "business" else None,
                          segment),
        brand=brand,
        time_zone=profile.get("time_zone") or "Europe/Warsaw",
        data=dict(payload.get("data") or {}),
        items=tuple(items or ()),
    )
