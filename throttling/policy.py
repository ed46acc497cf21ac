"""The throttling policy: one TOML file validated on load, plus per-customer overrides."""

from __future__ import annotations

import re
import tomllib
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from throttling.errors import PolicyError

DEFAULT_POLICY_FILE = Path(__file__).with_name("policy.toml")
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: Any) -> timedelta:
    """'30m', '4h', '1d', '2w' (or a number of seconds) as a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return timedelta(seconds=value)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{value!r} is not a duration such as '30m', '4h', '1d' or '2w'")
    return timedelta(seconds=int(match[1]) * _UNITS[match[2]])


def parse_clock(value: Any) -> time:
    """'21:00' (or a TOML local time) as a time of day."""
    if isinstance(value, time):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{1,2}:\d{2}", value.strip()):
        hour, minute = (int(p) for p in value.strip().split(":"))
        if hour < 24 and minute < 60:
            return time(hour, minute)
    raise ValueError(f"{value!r} is not a time of day such as '21:00'")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Clock = Annotated[time, BeforeValidator(parse_clock)]
Name = Annotated[str, Field(pattern=r"^[a-z0-9_]{1,48}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CapRule(_Strict):
    """At most `limit` messages per customer in any sliding `window`, for the matching messages."""

    name: Name
    limit: Annotated[int, Field(ge=0)]
    window: Duration
    channels: tuple[str, ...] = ("*",)
    categories: tuple[str, ...] = ("*",)
    per_channel: bool = False

    @field_validator("window")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("window must be longer than zero")
        return value

    def applies(self, channel: str, category: str) -> bool:
        """True when a message on `channel` of `category` counts against this rule."""
        return ("*" in self.channels or channel in self.channels) and (
            "*" in self.categories or category in self.categories
        )

    def scope(self, customer_id: str, channel: str) -> str:
        """The counter this rule uses for the customer (and channel, if counted per channel)."""
        suffix = f"|{channel}" if self.per_channel else ""
        return f"{customer_id}|{self.name}{suffix}"


class QuietHoursRule(_Strict):
    """Local night window in which non-urgent messages of `categories` wait for its end."""

    enabled: bool = True
    start: Clock = time(21, 0)
    end: Clock = time(8, 0)
    categories: tuple[str, ...] = ("transactional", "loyalty", "marketing")
    # Channels that make no sound (the app's inbox): never held for the night.
    silent_channels: tuple[str, ...] = ("inbox",)


class UrgencyRule(_Strict):
    """Which event types may pass quiet hours (and skip a collapse hold)."""

    inherit: bool = True  # take the `urgent` flag of hub/event_types.toml as the baseline
    always: tuple[str, ...] = ()
    never: tuple[str, ...] = ()
    near_deadline: tuple[str, ...] = ()
    deadline_within: Duration = timedelta(hours=12)


class CollapseRule(_Strict):
    """A short hold so that a newer status can supersede a waiting one (0 = no hold)."""

    hold: Duration = timedelta(0)
    categories: tuple[str, ...] = ("transactional",)


class DedupeRule(_Strict):
    """Event types that may repeat for the same parcel (everything else goes out once)."""

    repeatable: tuple[str, ...] = ()


class DigestRule(_Strict):
    """Categories a customer may take as a daily digest, and the default hour."""

    categories: tuple[str, ...] = ("loyalty", "marketing")
    default_hour: Annotated[int, Field(ge=0, le=23)] = 18
    gather: Duration = timedelta(minutes=1)  # confirmed items wait this long for the others


class Policy(_Strict):
    """The whole throttling policy."""

    version: int = 1
    caps: tuple[CapRule, ...] = ()
    quiet_hours: QuietHoursRule = QuietHoursRule()
    urgency: UrgencyRule = UrgencyRule()
    collapse: CollapseRule = CollapseRule()
    dedupe: DedupeRule = DedupeRule()
    digest: DigestRule = DigestRule()

    @model_validator(mode="after")
    def _unique_names(self) -> Policy:
        names = [rule.name for rule in self.caps]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"cap names must be unique; repeated: {', '.join(duplicates)}")
        return self

    def max_window(self) -> timedelta:
        """The longest cap window (how long counters must be kept)."""
        return max((rule.window for rule in self.caps), default=timedelta(days=1))


class FrequencyChoice(BaseModel):
    """A customer's own cap for a category, e.g. at most 1 marketing message a week."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    limit: Annotated[int, Field(ge=0)]
    window: Duration = timedelta(days=7)


class QuietHoursChoice(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    enabled: bool = True
    start: Clock = time(21, 0)
    end: Clock = time(8, 0)


class DigestChoice(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    enabled: bool = True
    hour: Annotated[int, Field(ge=0, le=23)] | None = None
    categories: tuple[str, ...] = ("loyalty", "marketing")


class CustomerOverrides(BaseModel):
    """Per-customer throttling choices, passed in as plain data from preferences.

    Accepted keys (all optional): `quiet_hours` {enabled, start, end}; `caps` {rule name:
    limit}; `frequency` {category: {limit, window}}; `digest` {enabled, hour, categories}
    (a present `digest` means the customer chose a daily digest; hour defaults to the policy's).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)
    quiet_hours: QuietHoursChoice | None = None
    caps: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    frequency: dict[str, FrequencyChoice] = Field(default_factory=dict)
    digest: DigestChoice | None = None

    @classmethod
    def from_mapping(cls, data: dict[str, Any] | None) -> CustomerOverrides:
        """Validates plain preference data; raises PolicyError naming the bad field."""
        if not data:
            return _NO_OVERRIDES
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise PolicyError(_explain("customer overrides", exc)) from exc


_NO_OVERRIDES = CustomerOverrides()


def effective_caps(policy: Policy, overrides: CustomerOverrides) -> tuple[CapRule, ...]:
    """The policy's caps with the customer's limits applied, plus their own frequency caps."""
    rules = [
        rule.model_copy(update={"limit": overrides.caps[rule.name]})
        if rule.name in overrides.caps else rule
        for rule in policy.caps
    ]
    for category, choice in sorted(overrides.frequency.items()):
        rules.append(CapRule(name=f"customer_{category}"[:48].lower(), limit=choice.limit,
                             window=choice.window, categories=(category,)))
    return tuple(rules)


def _explain(source: str, exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        lines.append(f"{where}: {error['msg']}")
    return f"{source} is invalid:\n  " + "\n  ".join(lines)


def parse_policy(data: dict[str, Any], source: str = "policy") -> Policy:
    """A Policy from already-parsed TOML data; raises PolicyError naming every bad field."""
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_explain(source, exc)) from exc


def load_policy(path: str | Path | None = None) -> Policy:
    """Reads and validates the policy file (the packaged default when `path` is None)."""
    file = Path(path) if path else DEFAULT_POLICY_FILE
    try:
        data = tomllib.loads(file.read_text("utf-8"))
    except OSError as exc:
        raise PolicyError(f"policy file {file} cannot be read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"policy file {file} is not valid TOML: {exc}") from exc
    return parse_policy(data, f"policy file {file}")
