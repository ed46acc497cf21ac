"""The campaign form's flat fields as the API's campaign body, and back for redisplay.

Field names: `name`, `category`, `channels` (repeated), `holdout_percent`, `send_rate`,
`schedule_kind`, `schedule_at` (a local date-time in `time_zone`), `local_time`, and per
variant `v<i>.name`, `v<i>.weight`, `v<i>.<locale>.<channel>.<part>`, `v<i>.<locale>.url`.
Empty parts and locales are left out, so the API's own validation names what is missing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from hub.campaigns.model import COPY_OF
from templates.inline import PARTS

FORM_LOCALES = ("pl", "en")
VARIANTS = 2
CHANNELS = ("email", "sms", "push", "app_push", "inbox")  # what a campaign may send on
COPY_CHANNELS = ("email", "sms", "push")  # the copy typed per variant (the app shows push's)


def _int(value: str | None, default: int | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        return default


def variant_of(fields: dict[str, str], i: int, channels: list[str]) -> dict[str, Any] | None:
    """Variant `i` from the fields (None when its name is empty)."""
    name = fields.get(f"v{i}.name", "").strip()
    if not name:
        return None
    templates: dict[str, Any] = {}
    for locale in FORM_LOCALES:
        copy: dict[str, Any] = {}
        for channel in dict.fromkeys(COPY_OF.get(c, c) for c in channels):
            parts = {part: text for part in PARTS.get(channel, {})
                     if (text := fields.get(f"v{i}.{locale}.{channel}.{part}", "").strip())}
            if parts:
                copy[channel] = parts
        url = fields.get(f"v{i}.{locale}.url", "").strip()
        if copy:
            templates[locale] = {**copy, **({"url": url} if url else {})}
    return {"name": name, "weight": _int(fields.get(f"v{i}.weight"), 50),
            "templates": templates}


def _schedule(fields: dict[str, str]) -> dict[str, Any]:
    kind = fields.get("schedule_kind", "now")
    if kind == "at":
        raw = fields.get("schedule_at", "")
        try:
            zone = ZoneInfo(fields.get("time_zone") or "Europe/Warsaw")
            at: str | None = datetime.fromisoformat(raw).replace(tzinfo=zone).isoformat()
        except (ValueError, ZoneInfoNotFoundError):
            at = raw or None
        return {"kind": "at", "at": at}
    if kind == "local_time":
        return {"kind": "local_time", "local_time": fields.get("local_time", "")}
    return {"kind": "now"}


def campaign_body(fields: dict[str, str], channels: list[str], audience_id: str
                  ) -> dict[str, Any]:
    """The JSON body `POST /v1/campaigns` takes, from the form."""
    variants = [v for i in range(VARIANTS) if (v := variant_of(fields, i, channels))]
    body: dict[str, Any] = {
        "name": fields.get("name", "").strip(), "audience_id": audience_id,
        "category": fields.get("category", "marketing"), "channels": channels,
        "variants": variants,
        "holdout_percent": _int(fields.get("holdout_percent"), 0),
        "schedule": _schedule(fields),
    }
    rate = _int(fields.get("send_rate"), None)
    if rate is not None:
        body["send_rate"] = rate
    return body
