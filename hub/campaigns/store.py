"""Campaign rows: create, read, and the state machine's actions (with what cancel undoes)."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from hub.campaigns.model import ALLOWED, Action, CampaignIn, CampaignState, actions_from
from hub.db import Database
from hub.models import Campaign, CampaignRecipient, Decision, Event, OutboxJob
from hub.outcomes import ChannelDecision, Outcome


class IllegalTransition(Exception):
    """The action is not allowed in the campaign's state."""

    def __init__(self, action: Action, state: CampaignState) -> None:
        super().__init__(f"cannot {action.value} a {state.value} campaign")
        self.action, self.state = action, state
        self.allowed = actions_from(state)


def create(session: Session, tenant: str, key_id: str, body: CampaignIn,
           audience_pk: int) -> Campaign:
    """Stores a new draft campaign of the tenant."""
    variants = [v.model_dump(mode="json", exclude_none=True) for v in body.variants]
    row = Campaign(
        tenant=tenant, name=body.name, audience_id=audience_pk, category=body.category,
        channels=list(body.channels), variants=variants, holdout_percent=body.holdout_percent,
        schedule=body.schedule.kind, start_at=body.schedule.at,
        local_time=body.schedule.local_time, send_rate=body.send_rate,
        seed=secrets.token_hex(16), state=CampaignState.DRAFT, created_by=key_id, cursor=0,
        materialised=False)
    session.add(row)
    session.flush()
    return row


def get(session: Session, tenant: str, campaign_id: int) -> Campaign | None:
    """The tenant's campaign (another tenant's is invisible)."""
    return session.scalar(select(Campaign).where(Campaign.id == campaign_id,
                                                 Campaign.tenant == tenant))


def listing(session: Session, tenant: str, limit: int, before: int | None = None
            ) -> list[Campaign]:
    """The tenant's campaigns, newest first, a page before the id `before`."""
    query = select(Campaign).where(Campaign.tenant == tenant)
    if before is not None:
        query = query.where(Campaign.id < before)
    return list(session.scalars(query.order_by(Campaign.id.desc()).limit(limit)))


def act(db: Database, tenant: str, campaign_id: int, action: Action, now: datetime
        ) -> Campaign | None:
    """Applies an action (None if the campaign is not the tenant's); IllegalTransition if
    the state does not allow it. Cancel also stops the campaign's jobs not yet sent."""
    with db.transaction() as session:
        row = session.scalar(select(Campaign).where(Campaign.id == campaign_id,
                                                    Campaign.tenant == tenant)
                             .with_for_update())
        if row is None:
            return None
        state = CampaignState(row.state)
        if state not in ALLOWED[action]:
            raise IllegalTransition(action, state)
        if action is Action.START:
            row.state = CampaignState.SCHEDULED
            if row.start_at is None:  # now / local_time: the start is this moment
                row.start_at = now
        elif action is Action.PAUSE:
            row.state = CampaignState.PAUSED
        elif action is Action.RESUME:
            row.state = (CampaignState.RUNNING if row.started_at is not None
                         else CampaignState.SCHEDULED)
        else:
            row.state, row.finished_at = CampaignState.CANCELLED, now
            cancel_pending(session, row.id, now)
        return row


def cancel_pending(session: Session, campaign_id: int, now: datetime) -> int:
    """Recipients not yet queued are cancelled; queued jobs nobody holds are finished with
    a `campaign_cancelled` decision. A job in a worker's hands may still send. Returns how
    many jobs were stopped."""
    session.execute(update(CampaignRecipient).where(
        CampaignRecipient.campaign_id == campaign_id, CampaignRecipient.state == "assigned")
        .values(state="cancelled"))
    queued = select(CampaignRecipient.event_pk).where(
        CampaignRecipient.campaign_id == campaign_id, CampaignRecipient.state == "queued")
    free = or_(OutboxJob.lease_until.is_(None), OutboxJob.lease_until < now)
    stopped = list(session.scalars(
        update(OutboxJob).where(OutboxJob.event_pk.in_(queued), OutboxJob.state == "pending",
                                free)
        .values(state="done", lease_owner=None, lease_until=None, updated_at=now)
        .returning(OutboxJob.event_pk)))
    cancelled = ChannelDecision("*", Outcome.SKIPPED, "campaign_cancelled",
                                f"campaign {campaign_id} was cancelled before this message "
                                "was sent")
    for start in range(0, len(stopped), 5000):  # bounded parameter lists
        chunk = stopped[start:start + 5000]
        session.execute(update(Event).where(Event.id.in_(chunk)).values(state="processed"))
        session.execute(delete(Decision).where(Decision.event_pk.in_(chunk)))
        session.execute(insert(Decision), [
            {"event_pk": pk, "channel": cancelled.channel, "outcome": str(cancelled.outcome),
             "reason": cancelled.reason, "detail": cancelled.detail, "created_at": now}
            for pk in chunk])
    return len(stopped)


def assigned_counts(session: Session, campaign_id: int) -> dict[str, int]:
    """Recipients per variant (and `holdout`)."""
    rows = session.execute(select(CampaignRecipient.variant, func.count())
                           .where(CampaignRecipient.campaign_id == campaign_id)
                           .group_by(CampaignRecipient.variant))
    return {variant: int(n) for variant, n in rows}


def queued_count(session: Session, campaign_id: int) -> int:
    return int(session.scalar(select(func.count()).select_from(CampaignRecipient).where(
        and_(CampaignRecipient.campaign_id == campaign_id,
             CampaignRecipient.event_pk.is_not(None)))) or 0)
