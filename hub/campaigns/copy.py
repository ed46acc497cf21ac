"""A campaign variant's copy as a template set of the renderer.

Each campaign event carries `data.campaign = {"id": ..., "variant": ...}`; the render step
asks for the set `campaign:<tenant>:<id>:<variant>`, which this source reads from the
campaign row (the tenant in the key must match the row's, so an event can never reach
another tenant's copy). Variants never change after creation, so sets are cached.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from hub.clicks import campaign_of
from hub.db import Database
from hub.models import Campaign
from templates.catalog import CHANNELS
from templates.inline import compose

# The event type of a campaign's messages per category (it decides the consent purpose).
EVENT_TYPES = {"marketing": "marketing.campaign", "loyalty": "loyalty.campaign"}
PRODUCER = "hub-campaigns"  # the producer of campaign events; no API key may post as it


def set_key(tenant: str, campaign_id: int, variant: str) -> str:
    return f"campaign:{tenant}:{campaign_id}:{variant}"


def sources(variant: Mapping[str, Any]) -> dict[str, str]:
    """Locale → Jinja source of a stored variant (`templates`: locale → parts, url)."""
    out = {}
    for locale, template in variant["templates"].items():
        parts = {channel: template[channel] for channel in ("email", "sms", "push")
                 if template.get(channel)}
        out[locale] = compose(parts, template.get("url"))
    return out


def _reference(payload: Mapping[str, Any]) -> dict[str, Any] | None:
    ref = (payload.get("data") or {}).get("campaign")
    if payload.get("type") not in EVENT_TYPES.values() or not isinstance(ref, dict):
        return None
    return ref


def template_set_of(payload: Mapping[str, Any], tenant: str) -> str | None:
    """The template set a campaign event names; None for any other event (or a reference
    that names no campaign id and variant)."""
    campaign_id, variant = campaign_of(dict(payload))
    if _reference(payload) is None or campaign_id is None or variant is None:
        return None
    return set_key(tenant, campaign_id, variant)


def campaign_channels(payload: Mapping[str, Any]) -> tuple[str, ...] | None:
    """A campaign event's channel order; None for any other event or without a list."""
    ref = _reference(payload)
    channels = ref.get("channels") if ref is not None else None
    if not isinstance(channels, list) or not all(c in CHANNELS for c in channels):
        return None
    return tuple(channels)


class CampaignTemplates:
    """The renderer's inline source backed by the campaigns table."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()

    def stems(self, key: str) -> Mapping[str, str] | None:
        found = self._cache.get(key)
        if found is not None:
            return found
        kind, tenant, campaign_id, variant = (key.split(":") + ["", "", "", ""])[:4]
        if kind != "campaign" or not campaign_id.isdigit():
            return None
        with self.db.sessions() as session:
            row = session.get(Campaign, int(campaign_id))
            if row is None or row.tenant != tenant:
                return None
            spec = next((v for v in row.variants if v["name"] == variant), None)
        if spec is None:
            return None
        with self._lock:
            found = self._cache.setdefault(key, sources(spec))
        return found
