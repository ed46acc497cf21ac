"""What a campaign is on the wire (validated input), and its state machine."""

from __future__ import annotations

import enum
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, model_validator

from hub.campaigns.assignment import HOLDOUT
from hub.campaigns.schedule import parse_hhmm
from hub.db import utcnow
from hub.events import Instant
from templates.inline import check_part


class CampaignState(enum.StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"  # started, waiting for its start instant
    RUNNING = "running"  # assigning recipients and queueing their events
    PAUSED = "paused"  # creates no events until resumed
    COMPLETED = "completed"  # every recipient assigned and every event queued
    CANCELLED = "cancelled"


class Action(enum.StrEnum):
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"


S = CampaignState
# action → the states it may be taken from
ALLOWED: dict[Action, frozenset[CampaignState]] = {
    Action.START: frozenset({S.DRAFT}),
    Action.PAUSE: frozenset({S.SCHEDULED, S.RUNNING}),
    Action.RESUME: frozenset({S.PAUSED}),
    Action.CANCEL: frozenset({S.DRAFT, S.SCHEDULED, S.RUNNING, S.PAUSED}),
}
# states the runner works on
ACTIVE = frozenset({S.SCHEDULED, S.RUNNING})


def actions_from(state: CampaignState) -> list[str]:
    """The actions allowed in a state (for the 409 problem and the UI)."""
    return [a.value for a, states in ALLOWED.items() if state in states]


def _part(value: str) -> str:
    check_part(value)
    return value


Part = Annotated[str, Field(min_length=1), AfterValidator(_part)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class EmailParts(_Strict):
    subject: Annotated[Part, Field(max_length=200)]
    heading: Annotated[Part, Field(max_length=200)]
    body: Annotated[Part, Field(max_length=5000)]
    button: Annotated[Part, Field(max_length=60)] | None = None  # the label of `url`


class SmsParts(_Strict):
    text: Annotated[Part, Field(max_length=1000)]


class PushParts(_Strict):
    title: Annotated[Part, Field(max_length=100)]
    body: Annotated[Part, Field(max_length=500)]


class LocaleTemplate(_Strict):
    """One locale's copy: a part set per channel the campaign uses, and an optional link."""

    email: EmailParts | None = None
    sms: SmsParts | None = None
    push: PushParts | None = None
    url: Annotated[HttpUrl, Field(max_length=2048)] | None = None

    @model_validator(mode="after")
    def _button_for_url(self) -> LocaleTemplate:
        if self.url is not None and self.email is not None and self.email.button is None:
            raise ValueError("email.button (the link's label) is required with a url")
        return self


Locale = Literal["pl", "en", "uk", "de"]
Channel = Literal["email", "sms", "push", "app_push", "inbox"]
# The carrier's app shows the push copy: as its notification and in its inbox.
COPY_OF: dict[str, str] = {"app_push": "push", "inbox": "push"}
VariantName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]


class VariantIn(_Strict):
    name: VariantName
    weight: Annotated[int, Field(ge=1, le=100)] = 50
    templates: Annotated[dict[Locale, LocaleTemplate], Field(min_length=1)]


class ScheduleIn(_Strict):
    """`now`, `at` an instant, or `local_time` ("10:00") in each customer's time zone."""

    kind: Literal["now", "at", "local_time"] = "now"
    at: Instant | None = None
    local_time: Annotated[str, Field(max_length=5)] | None = None

    @model_validator(mode="after")
    def _fields_of_kind(self) -> ScheduleIn:
        if self.kind == "at":
            if self.at is None:
                raise ValueError("`at` is required when kind is \"at\"")
            now = utcnow()
            if not now - timedelta(minutes=5) <= self.at <= now + timedelta(days=366):
                raise ValueError("`at` must lie between now and one year ahead")
        elif self.at is not None:
            raise ValueError("`at` is only for kind \"at\"")
        if self.kind == "local_time":
            if self.local_time is None:
                raise ValueError("`local_time` (HH:MM) is required when kind is \"local_time\"")
            parse_hhmm(self.local_time)
        elif self.local_time is not None:
            raise ValueError("`local_time` is only for kind \"local_time\"")
        return self


class CampaignIn(_Strict):
    """A new campaign (created as a draft; `POST .../start` starts it)."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    audience_id: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^aud_[\w-]+$",
                                      description="the audience's public id (aud_...)")]
    category: Literal["marketing", "loyalty"]
    channels: Annotated[list[Channel], Field(min_length=1, max_length=5)]
    variants: Annotated[list[VariantIn], Field(min_length=1, max_length=5)]
    holdout_percent: Annotated[int, Field(ge=0, le=50)] = 0
    schedule: ScheduleIn = Field(default_factory=ScheduleIn)
    send_rate: Annotated[int, Field(ge=1, le=10_000, description="messages per second at "
                                    "most; unset: no cap of its own")] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> CampaignIn:
        if len(set(self.channels)) != len(self.channels):
            raise ValueError("channels must not repeat")
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names) or HOLDOUT in names:
            raise ValueError("variant names must be unique and not \"holdout\"")
        for variant in self.variants:
            if not {"pl", "en"} & set(variant.templates):
                raise ValueError(f"variant {variant.name!r} needs a pl or en template "
                                 "(the fallback of other locales)")
            for locale, template in variant.templates.items():
                for channel in self.channels:
                    copy = COPY_OF.get(channel, channel)
                    if getattr(template, copy) is None:
                        via = f" ({channel} shows it)" if copy != channel else ""
                        raise ValueError(f"variant {variant.name!r}, {locale}: no {copy} "
                                         f"copy{via}, but the campaign sends on {channel}")
        return self
