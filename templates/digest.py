"""Digest items: each held loyalty/marketing message rendered as its own push title and body,
so the digest template can list them in the customer's language and tone.

Items may be event payloads (wire shape: `type`, `occurred_at`, `data`, `parcel`) or the
throttling stage's held items (`event_type`, `occurred_at`, `data`, ...); an item that
already carries a `title` is used as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from templates.context import RenderContext, build_context
from templates.errors import RenderError
from templates.formatting import Formatter

# (event type, locale chain, tone, context) -> the push parts of one held item
PushRender = Callable[[str, tuple[str, ...], str, RenderContext], dict[str, str]]


def _payload(item: dict[str, Any], ctx: RenderContext) -> dict[str, Any]:
    return {
        "type": item.get("type") or item.get("event_type"),
        "occurred_at": item.get("occurred_at") or ctx.occurred_at.isoformat(),
        "data": item.get("data") or {},
        **({"parcel": item["parcel"]} if item.get("parcel") else {}),
    }


def with_rendered_items(render_push: PushRender, ctx: RenderContext, locale: str,
                        tone: str) -> RenderContext:
    """The context with `items` replaced by {type, title, body, url} for each held item."""
    profile = {"name": ctx.customer.name, "segment": ctx.customer.segment,
               "time_zone": ctx.time_zone}
    chain = tuple(dict.fromkeys((locale, "pl", "en")))
    rendered = []
    for item in ctx.items:
        if "title" in item and not (item.get("type") or item.get("event_type")):
            rendered.append(item)
            continue
        payload = _payload(item, ctx)
        try:
            item_ctx = build_context(payload, profile, now=ctx.now, brand=ctx.brand,
                                     links=ctx.links)
            parts = render_push(str(payload["type"]), chain, tone, item_ctx)
        except (RenderError, KeyError, TypeError, ValueError):
            # One malformed held item must not sink the whole digest: list it generically.
            title = Formatter(locale, ctx.time_zone, ctx.now).gettext("New message in your account")
            parts = {"title": title, "body": "", "url": ctx.brand.help_url}
        rendered.append({"type": payload["type"], "title": parts["title"],
                         "body": parts["body"], "url": parts.get("url", "")})
    return replace(ctx, items=tuple(rendered))
