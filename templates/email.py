"""The e-mail parts: one shared layout (HTML and plain text) around each event's copy."""

from __future__ import annotations

from collections.abc import Callable

from jinja2 import Template

from templates.context import RenderContext
from templates.formatting import Formatter

ETA_TYPES = frozenset({"parcel.label_created", "parcel.in_transit", "parcel.out_for_delivery",
                       "parcel.delayed", "parcel.delivery_rescheduled"})
PICKUP_TYPES = frozenset({"parcel.ready_for_pickup", "parcel.pickup_reminder"})
COD_TYPES = ETA_TYPES | PICKUP_TYPES | {"parcel.delivery_attempt_failed"}


def facts(ctx: RenderContext, fmt: Formatter) -> list[tuple[str, str]]:
    """Label/value rows shown under the copy: tracking number, window, pickup, amounts."""
    p, kind, _ = ctx.parcel, ctx.event_type, fmt.gettext
    rows: list[tuple[str, str]] = []
    if not kind.startswith("parcel."):
        return rows
    if p.tracking_number:
        rows.append((_("Tracking number"), p.tracking_number))
    if p.eta and kind in ETA_TYPES:
        rows.append((_("Delivery window"), fmt.window(p.eta.start, p.eta.end)))
    if p.pickup_point and kind in PICKUP_TYPES:
        point = p.pickup_point
        where = f"{point.name}, {point.address}" if point.address else point.name
        rows.append((_("Pickup point"), where))
        if point.code:
            rows.append((_("Pickup code"), point.code))
        if point.deadline:
            rows.append((_("Collect by"), fmt.moment(point.deadline)))
    if p.cod and kind in COD_TYPES:
        rows.append((_("Cash on delivery"), fmt.money(p.cod.amount, p.cod.currency)))
    if p.customs and kind == "parcel.customs_payment_required":
        rows.append((_("Duty and taxes to pay"), fmt.money(p.customs.amount, p.customs.currency)))
    return rows


def compose(template: Callable[[str], Template], blocks: dict[str, str], ctx: RenderContext,
            fmt: Formatter) -> dict[str, str]:
    """Subject, HTML and text parts from the event's blocks and the shared layout."""
    values = {
        "lang": fmt.locale,
        "brand": ctx.brand,
        "subject": " ".join(blocks["subject"].split()),
        "preheader": " ".join(blocks.get("preheader", "").split()),
        "heading": " ".join(blocks["heading"].split()),
        "paragraphs": [" ".join(p.split()) for p in blocks["body"].split("\n\n") if p.strip()],
        "facts": facts(ctx, fmt),
        "cta_label": blocks.get("cta_label", "").strip(),
        "cta_url": blocks.get("cta_url", "").strip(),
        # Delivery feedback: one-tap 0-10 links and the scale's end labels.
        "ratings": list(enumerate(ctx.links.ratings)),
        "rating_low": " ".join(blocks.get("rating_low", "").split()),
        "rating_high": " ".join(blocks.get("rating_high", "").split()),
        "preferences_url": ctx.links.preferences or ctx.brand.preference_url,
        # One-click unsubscribe for what needs consent or allows opting out (feedback
        # requests); parcel notices have no such link.
        "unsubscribe_url": ctx.links.unsubscribe
        if not ctx.event_type.startswith("parcel.") or ctx.links.ratings else None,
        "_": fmt.gettext,
    }
    html = template("layout/email.html.j2").render(values)
    text = template("layout/email.txt.j2").render(values)
    return {"subject": values["subject"], "html": html, "text": text.strip() + "\n"}  # type: ignore[dict-item]
