"""Quiet hours in the customer's time zone, correct across daylight-saving changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

FALLBACK_ZONE = "Europe/Warsaw"


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The named IANA zone; an unknown name falls back to Europe/Warsaw."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(FALLBACK_ZONE)


def wall_instant(day: date, clock: time, tz: ZoneInfo) -> datetime:
    """The UTC instant at which the wall clock in `tz` shows `clock` on `day`.

    A time skipped by a spring-forward change maps to the same offset past the change
    (02:30 on the last Sunday of March in Warsaw is 03:30 CEST); a time that occurs twice
    in autumn maps to its first occurrence.
    """
    return datetime.combine(day, clock, tzinfo=tz).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A nightly window [start, end) of local wall-clock time; start > end wraps midnight."""

    start: time
    end: time

    def contains(self, local: time) -> bool:
        """True when the local wall-clock time falls inside the window."""
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def window_end(self, now: datetime, time_zone: str) -> datetime | None:
        """The UTC instant the window ends if `now` is inside it, otherwise None."""
        tz = zone(time_zone)
        local = now.astimezone(tz)
        if not self.contains(local.time().replace(tzinfo=None)):
            return None
        day = local.date()
        if self.start > self.end and local.time() >= self.start:
            day += timedelta(days=1)
        end = wall_instant(day, self.end, tz)
        earliest = datetime.combine(day, self.end, tzinfo=tz).replace(fold=1).astimezone(UTC)
        if earliest < end:  # the end falls in a spring-forward gap: it ends when clocks jump
            end = self._first_outside(max(earliest, now.astimezone(UTC)), end, tz)
        return end

    def _first_outside(self, low: datetime, high: datetime, tz: ZoneInfo) -> datetime:
        """The first whole minute in (low, high] whose local time is outside the window."""
        step = low.replace(second=0, microsecond=0) + timedelta(minutes=1)
        while step < high:
            if not self.contains(step.astimezone(tz).time().replace(tzinfo=None)):
                return step
            step += timedelta(minutes=1)
        return high
