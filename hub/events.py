"""The event wire shape (see docs/architecture.md) and the registry of event types and their categories."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    HttpUrl,
    field_validator,
    model_validator,
)

from hub.traits import Traits


class Category(enum.StrEnum):
    """Legal category of a message: decides whether consent is needed."""

    TRANSACTIONAL = "transactional"
    LOYALTY = "loyalty"
    MARKETING = "marketing"
    FEEDBACK = "feedback"  # legitimate interest, opt-out (delivery feedback requests)


@dataclass(frozen=True, slots=True)
class EventType:
    """What the hub knows about one event type."""

    name: str
    category: Category
    rank: int = 0
    urgent: bool = False
    required: tuple[str, ...] = ()  # dotted payload paths an event of this type must carry
    tenants: tuple[str, ...] | None = None  # who may post it; None = every tenant


def event_types(path: str | None = None) -> dict[str, EventType]:
    """Event types: the packaged `hub/event_types.toml` plus the operator's file named by
    HUB_EVENT_TYPES_FILE (or `path`), which adds types or overrides packaged ones."""
    if path is None:
        from hub.settings import get_settings

        path = get_settings().event_types_file
    return _load_types(path)


@lru_cache(maxsize=8)
def _load_types(path: str | None) -> dict[str, EventType]:
    from hub.event_catalog import load_types

    return load_types(path)


def _known_type(value: str) -> str:
    if value not in event_types():
        known = ", ".join(sorted(event_types()))
        raise ValueError(f"unknown event type {value!r}; known types: {known}")
    return value


# Instants outside these bounds are typos or probes; they would also overflow UTC
# conversion (year 1 at +01:00 is before datetime.min) and the stores' timestamp types.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def sane_instant(value: datetime) -> datetime:
    """An aware datetime that converts to UTC and lies between 1970 and 2200; else ValueError.

    Shared by every API field that takes a client timestamp (events, consent `at`)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must carry a UTC offset")
    try:
        in_utc = value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("is out of range") from exc
    if not EARLIEST <= in_utc < LATEST:
        raise ValueError(f"must lie between {EARLIEST:%Y} and {LATEST:%Y}")
    return value


def _iso_string(value: Any) -> Any:
    if not isinstance(value, str | datetime):
        raise ValueError("must be an ISO-8601 timestamp string with a UTC offset")
    return value


# Timestamps must carry their offset: a naive time is ambiguous across Europe's DST changes.
Instant = Annotated[AwareDatetime, BeforeValidator(_iso_string), AfterValidator(sane_instant)]
# What the renderer can format as money: at most 12 integer digits and 4 decimals, no
# exponent (Decimal("1e999999") is "finite" but no formatter can print it).
DecimalString = Annotated[str, Field(pattern=r"^[0-9]{1,12}(\.[0-9]{1,4})?$",
                                     examples=["12.50"])]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CustomerRef(_Strict):
    """The recipient; only `id` is required, other fields create or update the profile."""

    id: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\w.:@+-]+$")]
    name: ShortText | None = None
    phone: Annotated[str, Field(max_length=32)] | None = None
    email: EmailStr | None = None
    locale: Annotated[str, Field(max_length=16)] | None = None
    tone: Annotated[str, Field(pattern=r"^(formal|informal)$")] | None = None
    time_zone: Annotated[str, Field(max_length=64)] | None = None
    segment: Annotated[str, Field(pattern=r"^(individual|business)$")] | None = None
    traits: Traits | None = None  # merged into the profile's traits (newer events only)


class EtaWindow(_Strict):
    from_: Instant = Field(alias="from")
    to: Instant


class PickupPoint(_Strict):
    id: ShortText
    name: ShortText | None = None
    address: ShortText | None = None
    code: Annotated[str, Field(max_length=32)] | None = None
    deadline: Instant | None = None


class Money(_Strict):
    amount: DecimalString
    currency: Currency


class Customs(Money):
    pay_url: HttpUrl | None = None


class ParcelLinks(_Strict):
    track: HttpUrl | None = None
    reschedule: HttpUrl | None = None
    redirect: HttpUrl | None = None


class Parcel(_Strict):
    tracking_number: Annotated[str, Field(min_length=3, max_length=64, pattern=r"^[\w-]+$")]
    carrier: ShortText | None = None
    links: ParcelLinks | None = None
    eta: EtaWindow | None = None
    pickup_point: PickupPoint | None = None
    cod: Money | None = None
    customs: Customs | None = None


class EventIn(_Strict):
    """One event as a parcel system posts it."""

    event_id: Annotated[str, Field(min_length=1, max_length=128)]
    type: Annotated[str, AfterValidator(_known_type)]
    occurred_at: Instant
    customer: CustomerRef
    parcel: Parcel | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("data")
    @classmethod
    def _small_data(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > 100:
            raise ValueError("data may hold at most 100 keys")
        return value

    @model_validator(mode="after")
    def _parcel_for_parcel_events(self) -> EventIn:
        if self.type.startswith("parcel.") and self.parcel is None:
            raise ValueError(f"a {self.type} event needs a parcel")
        required = event_types()[self.type].required
        if required:  # fields the event types file demands of this type
            from hub.event_catalog import missing_fields

            missing = missing_fields(self.canonical(), required)
            if missing:
                raise ValueError(f"a {self.type} event needs {', '.join(missing)}")
        return self

    @property
    def event_type(self) -> EventType:
        return event_types()[self.type]

    def canonical(self) -> dict[str, Any]:
        """The payload as stored: JSON-safe, aliases kept, unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def parse_time(value: str) -> datetime:
    """ISO-8601 timestamp as stored in payloads."""
    return datetime.fromisoformat(value)
