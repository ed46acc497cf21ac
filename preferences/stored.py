"""Preferences to and from the JSON document stored with the customer (pure)."""

from __future__ import annotations

from datetime import time
from typing import Any

from preferences.model import CATEGORIES, CHANNELS, Frequency, Preferences, QuietHours


def preferences_from_json(doc: dict[str, Any] | None) -> Preferences:
    """Stored preferences; missing or unknown parts fall back to the defaults."""
    doc = doc or {}
    default = Preferences()
    channels = dict(default.channels)
    for category, order in (doc.get("channels") or {}).items():
        if category in CATEGORIES:
            channels[category] = tuple(c for c in order if c in CHANNELS)
    quiet = doc.get("quiet_hours")
    frequency = doc.get("frequency", Frequency.ALL)
    return Preferences(
        channels=channels,
        event_opt_outs=frozenset(doc.get("event_opt_outs") or ()),
        quiet_hours=QuietHours(time.fromisoformat(quiet["start"]), time.fromisoformat(quiet["end"]))
        if quiet else None,
        frequency=Frequency(frequency) if frequency in Frequency.__members__.values()
        else Frequency.ALL,
    )


def preferences_to_json(prefs: Preferences) -> dict[str, Any]:
    """The JSON document for the store and the API."""
    quiet = prefs.quiet_hours
    return {
        "channels": {cat: list(prefs.order_for(cat)) for cat in CATEGORIES},
        "event_opt_outs": sorted(prefs.event_opt_outs),
        "quiet_hours": {"start": quiet.start.strftime("%H:%M"), "end": quiet.end.strftime("%H:%M")}
        if quiet else None,
        "frequency": str(prefs.frequency),
    }
