"""When a campaign message is due: at the start, or at a wall-clock time in each
customer's own time zone (the next occurrence after the start, DST-correct)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

FALLBACK_ZONE = "Europe/Warsaw"


def zone(name: str | None) -> ZoneInfo:
    """The customer's zone; an unknown or empty name falls back to Europe/Warsaw."""
    try:
        return ZoneInfo(name or FALLBACK_ZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(FALLBACK_ZONE)


def local_instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """`at` on `day` in `tz` as a UTC instant. With fold=0 a time skipped by a spring-forward
    change lands past the gap (02:30 → 03:30) and a repeated autumn time takes its first
    occurrence (PEP 495)."""
    return datetime.combine(day, at, tzinfo=tz).replace(fold=0).astimezone(UTC)


def next_local(at: time, tz_name: str | None, after: datetime) -> datetime:
    """The first instant at or after `after` when the customer's clock shows `at`."""
    tz = zone(tz_name)
    day = after.astimezone(tz).date()
    for offset in range(3):
        candidate = local_instant(day + timedelta(days=offset), at, tz)
        if candidate >= after:
            return candidate
    raise AssertionError("a wall-clock time recurs within two days")


def parse_hhmm(value: str) -> time:
    """"10:00" → time(10, 0); ValueError otherwise."""
    hours, _, minutes = value.partition(":")
    if len(hours) != 2 or len(minutes) != 2 or not (hours + minutes).isdigit():
        raise ValueError("must be HH:MM, e.g. 10:00")
    return time(int(hours), int(minutes))
