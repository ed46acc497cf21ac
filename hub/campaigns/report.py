"""Progress and results of a campaign, per variant and for the holdout: direct counts
from the store (recipients, events, decisions, send records, clicks, consents,
conversions), then the conversion rate's Wilson interval and the lift against the holdout.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session, aliased

from hub.audience_models import Conversion, LinkClick
from hub.campaigns.assignment import HOLDOUT
from hub.campaigns.stats import lift, wilson
from hub.models import (
    Campaign,
    CampaignRecipient,
    ConsentRecord,
    Customer,
    Decision,
    Event,
    Notification,
)
from preferences.model import SkipReason

R = CampaignRecipient
FINISHED = ("processed", "dead")  # event states after which nothing more is sent
DELIVERED = ("delivered", "opened", "clicked", "complained", "unsubscribed")


@dataclass
class Group:
    """The counts of one variant (or the holdout)."""

    assigned: int = 0
    queued: int = 0
    sent: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    unsubscribed: int = 0
    converted: int = 0


def _per_variant(session: Session, query: Any) -> dict[str, int]:
    return {variant: int(n) for variant, n in session.execute(query)}


def _sent_exists() -> Any:
    return exists().where(Decision.event_pk == R.event_pk, Decision.outcome == "sent")


def progress(session: Session, campaign_id: int) -> dict[str, Any]:
    """Assigned per variant and holdout, queued, sent, skipped (events finished unsent)."""
    mine = R.campaign_id == campaign_id
    assigned = _per_variant(session, select(R.variant, func.count()).where(mine)
                            .group_by(R.variant))
    queued = session.scalar(select(func.count()).where(mine, R.event_pk.is_not(None)))
    sent = session.scalar(select(func.count()).where(mine, R.event_pk.is_not(None),
                                                     _sent_exists()))
    finished = session.scalar(select(func.count()).select_from(R)
                              .join(Event, Event.id == R.event_pk)
                              .where(mine, Event.state.in_(FINISHED)))
    return {"assigned": assigned, "queued": int(queued or 0), "sent": int(sent or 0),
            "skipped": int(finished or 0) - int(sent or 0)}


def _skipped(session: Session, campaign_id: int) -> dict[str, dict[str, int]]:
    """Per variant, finished events without a sent channel by the reason of their first
    decision on one of the campaign's channels (the preferred route, which decides the
    outcome; the inbox copy and the channels outside the campaign are `not_in_campaign`)."""
    first = aliased(Decision)
    first_id = (select(func.min(Decision.id))
                .where(Decision.event_pk == R.event_pk,
                       Decision.reason != str(SkipReason.NOT_IN_CAMPAIGN))
                .scalar_subquery())
    rows = session.execute(
        select(R.variant, first.reason, func.count())
        .join(Event, Event.id == R.event_pk).join(first, first.id == first_id)
        .where(R.campaign_id == campaign_id, Event.state.in_(FINISHED), ~_sent_exists())
        .group_by(R.variant, first.reason))
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for variant, reason, n in rows:
        out[variant][reason] = int(n)
    return out


def _receipts(session: Session, campaign_id: int) -> tuple[dict[str, int], dict[str, int]]:
    """Delivered and opened messages per variant (distinct events)."""
    base = (select(R.variant, func.count(func.distinct(R.event_pk)))
            .join(Notification, Notification.event_pk == R.event_pk)
            .where(R.campaign_id == campaign_id).group_by(R.variant))
    delivered = _per_variant(session, base.where(Notification.status.in_(DELIVERED)))
    opened = _per_variant(session, base.where(Notification.opened_at.is_not(None)))
    return delivered, opened


def _unsubscribed(session: Session, campaign: Campaign) -> dict[str, int]:
    """Recipients who withdrew consent for the campaign's purpose after it started."""
    if campaign.started_at is None:
        return {}
    return _per_variant(session, select(R.variant, func.count(func.distinct(R.customer_pk)))
                        .join(Customer, Customer.id == R.customer_pk)
                        .join(ConsentRecord, and_(
                            ConsentRecord.tenant == Customer.tenant,
                            ConsentRecord.customer_id == Customer.external_id,
                            ConsentRecord.purpose == campaign.category,
                            ConsentRecord.action == "withdrawn",
                            ConsentRecord.recorded_at >= campaign.started_at))
                        .where(R.campaign_id == campaign.id).group_by(R.variant))


def _converted(session: Session, campaign: Campaign, window: timedelta) -> dict[str, int]:
    """Distinct customers with a conversion credited to the campaign, per variant; for the
    holdout, conversions within `window` of the start with no click behind them."""
    credited = _per_variant(session, select(Conversion.variant,
                                            func.count(func.distinct(Conversion.customer_pk)))
                            .where(Conversion.campaign_id == campaign.id,
                                   Conversion.variant.is_not(None))
                            .group_by(Conversion.variant))
    if campaign.started_at is not None:
        start = campaign.started_at
        credited[HOLDOUT] = int(session.scalar(
            select(func.count(func.distinct(R.customer_pk)))
            .join(Conversion, Conversion.customer_pk == R.customer_pk)
            .where(R.campaign_id == campaign.id, R.variant == HOLDOUT,
                   Conversion.click_id.is_(None), Conversion.occurred_at >= start,
                   Conversion.occurred_at <= start + window)) or 0)
    return credited


def report(session: Session, campaign: Campaign, window: timedelta) -> dict[str, Any]:
    """Every count of the report per group, the rates, intervals and lifts."""
    groups: dict[str, Group] = {v["name"]: Group() for v in campaign.variants}
    groups[HOLDOUT] = Group()
    counts = progress(session, campaign.id)
    clicked = _per_variant(session, select(LinkClick.variant,
                                           func.count(func.distinct(LinkClick.customer_pk)))
                           .where(LinkClick.campaign_id == campaign.id)
                           .group_by(LinkClick.variant))
    queued = _per_variant(session, select(R.variant, func.count())
                          .where(R.campaign_id == campaign.id, R.event_pk.is_not(None))
                          .group_by(R.variant))
    sent = _per_variant(session, select(R.variant, func.count())
                        .where(R.campaign_id == campaign.id, R.event_pk.is_not(None),
                               _sent_exists()).group_by(R.variant))
    delivered, opened = _receipts(session, campaign.id)
    skipped = _skipped(session, campaign.id)
    unsubscribed = _unsubscribed(session, campaign)
    converted = _converted(session, campaign, window)
    for name, group in groups.items():
        group.assigned = counts["assigned"].get(name, 0)
        group.queued, group.sent = queued.get(name, 0), sent.get(name, 0)
        group.skipped = skipped.get(name, {})
        group.delivered, group.opened = delivered.get(name, 0), opened.get(name, 0)
        group.clicked, group.unsubscribed = clicked.get(name, 0), unsubscribed.get(name, 0)
        group.converted = converted.get(name, 0)
    return {"attribution_window_days": window.days,
            "groups": [_group_out(name, g, groups[HOLDOUT]) for name, g in groups.items()]}


def _group_out(name: str, group: Group, holdout: Group) -> dict[str, Any]:
    interval = wilson(group.converted, group.assigned)
    versus = (lift(group.converted, group.assigned, holdout.converted, holdout.assigned)
              if name != HOLDOUT else None)
    return {
        "variant": name, "assigned": group.assigned, "queued": group.queued,
        "sent": group.sent, "skipped": group.skipped, "delivered": group.delivered,
        "opened": group.opened, "clicked": group.clicked, "unsubscribed": group.unsubscribed,
        "converted": group.converted,
        "conversion_rate": group.converted / group.assigned if group.assigned else None,
        "conversion_rate_ci95": [interval.low, interval.high] if interval else None,
        "lift": None if versus is None else {
            "absolute": versus.absolute, "relative": versus.relative, "z": versus.z,
            "p_value": versus.p_value},
    }
