"""The follow-up rules file: validated like the throttling policy, errors name file and line."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from hub.config_files import ConfigFileError, line_of, read_toml

DEFAULT_RULES_FILE = Path(__file__).parent.parent / "followup_rules.toml"
_OFFSET = re.compile(r"^([+-])(\d{1,4})([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
_PATH = re.compile(r"^(occurred_at|(customer|parcel|data)(\.[A-Za-z_]\w*)+)$")
_KEYS = {"enabled", "on", "send", "at", "offsets", "scope", "cancel_on", "cancel_if",
         "replace_when_changed", "once_per_customer_days", "description"}


class Scope(enum.StrEnum):
    """Which later events concern a timer: the same parcel or the same customer."""

    PARCEL = "parcel"
    CUSTOMER = "customer"


@dataclass(frozen=True, slots=True)
class Offset:
    """A signed distance from the rule's anchor, e.g. -24h."""

    text: str
    delta: timedelta
    amount: int
    unit: str  # minutes | hours | days


@dataclass(frozen=True, slots=True)
class CancelIf:
    """Cancel only when the later event's `field` is below the trigger's `below_trigger`."""

    field: str
    below_trigger: str


@dataclass(frozen=True, slots=True)
class Rule:
    """One follow-up rule."""

    name: str
    on: str
    send: str
    at: str
    offsets: tuple[Offset, ...]
    scope: Scope
    cancel_on: tuple[str, ...] = ()
    cancel_if: CancelIf | None = None
    replace_when_changed: tuple[str, ...] = ()
    once_per_customer_days: int | None = None


def parse_offset(text: str) -> Offset:
    """'-24h' → Offset(-24 hours); raises ValueError for anything else."""
    found = _OFFSET.match(text)
    if not found:
        raise ValueError(f"offset {text!r} must look like -24h, -30d, +2h or -90m")
    sign, amount, unit = found.groups()
    delta = timedelta(**{_UNITS[unit]: int(amount)})
    return Offset(text, -delta if sign == "-" else delta, int(amount), _UNITS[unit])


def load_rules(path: str | Path | None, known_types: set[str], disabled: tuple[str, ...] = (),
               ) -> tuple[Rule, ...]:
    """The enabled rules of the file (the packaged default when `path` is None).

    A rule's `on`, `send` and `cancel_on` types must be known event types. In the packaged
    file a rule whose `send` type is not registered (e.g. a category not installed) is left
    out instead of failing, so the default never stops the hub.
    """
    file = Path(path) if path else DEFAULT_RULES_FILE
    raw, text = read_toml(file)
    if set(raw) - {"rules"} or not isinstance(raw.get("rules", {}), dict):
        raise ConfigFileError(file, 1, "rules go under [rules.<name>] tables only")
    rules = []
    for name, spec in raw.get("rules", {}).items():
        if name in disabled or (isinstance(spec, dict) and spec.get("enabled") is False):
            continue
        if path is None and isinstance(spec, dict) and spec.get("send") not in known_types:
            continue
        rules.append(_parse_rule(file, text, name, spec, known_types))
    return tuple(rules)


def _parse_rule(file: Path, text: str, name: str, spec: Any, known: set[str]) -> Rule:
    def fail(problem: str, key: str | None = None) -> ConfigFileError:
        return ConfigFileError(file, line_of(text, f"rules.{name}", key),
                               f"rule {name!r}: {problem}")

    if not isinstance(spec, dict):
        raise fail("must be a table")
    for key in sorted(set(spec) - _KEYS):
        raise fail(f"unknown key {key!r} (known: {', '.join(sorted(_KEYS))})", key)
    for key in ("on", "send"):
        if spec.get(key) not in known:
            raise fail(f"{key} = {spec.get(key)!r} is not a known event type", key)
    if not isinstance(spec.get("at"), str) or not _PATH.match(spec["at"]):
        raise fail("at must be \"occurred_at\" or a dotted path such as "
                   "\"parcel.pickup_point.deadline\"", "at")
    offsets = spec.get("offsets")
    if not isinstance(offsets, list) or not offsets or len(offsets) > 10:
        raise fail("offsets must be a list of 1 to 10 offsets such as \"-24h\"", "offsets")
    try:
        parsed = tuple(parse_offset(str(o)) for o in offsets)
    except ValueError as exc:
        raise fail(str(exc), "offsets") from exc
    if len({o.delta for o in parsed}) != len(parsed):
        raise fail("offsets repeat", "offsets")
    if spec.get("scope") not in [s.value for s in Scope]:
        raise fail("scope must be \"parcel\" or \"customer\"", "scope")
    cancel_on = spec.get("cancel_on", [])
    if not isinstance(cancel_on, list) or any(t not in known for t in cancel_on):
        raise fail("cancel_on must list known event types", "cancel_on")
    return Rule(name, spec["on"], spec["send"], spec["at"], parsed, Scope(spec["scope"]),
                tuple(cancel_on), _cancel_if(spec, fail),
                _paths(spec, "replace_when_changed", fail), _days(spec, fail))


def _cancel_if(spec: dict[str, Any], fail: Any) -> CancelIf | None:
    value = spec.get("cancel_if")
    if value is None:
        return None
    if (not isinstance(value, dict) or set(value) != {"field", "below_trigger"}
            or not all(isinstance(v, str) and _PATH.match(v) for v in value.values())):
        raise fail("cancel_if must be { field = \"data.x\", below_trigger = \"data.y\" }",
                   "cancel_if")
    return CancelIf(value["field"], value["below_trigger"])


def _paths(spec: dict[str, Any], key: str, fail: Any) -> tuple[str, ...]:
    value = spec.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and _PATH.match(v)
                                              for v in value):
        raise fail(f"{key} must be a list of dotted payload paths", key)
    return tuple(value)


def _days(spec: dict[str, Any], fail: Any) -> int | None:
    value = spec.get("once_per_customer_days")
    if value is not None and (not isinstance(value, int) or isinstance(value, bool)
                              or not 1 <= value <= 3650):
        raise fail("once_per_customer_days must be a whole number of days (1 to 3650)",
                   "once_per_customer_days")
    return value


@lru_cache(maxsize=8)
def _cached(path: str | None, types_file: str | None, disabled: tuple[str, ...]
            ) -> tuple[Rule, ...]:
    from hub.events import event_types

    return load_rules(path, set(event_types(types_file)), disabled)


def active_rules() -> tuple[Rule, ...]:
    """The rules in force for this process's settings (read once per settings)."""
    from hub.settings import get_settings

    settings = get_settings()
    return _cached(settings.followup_rules_file, settings.event_types_file,
                   tuple(settings.followups_disabled))
