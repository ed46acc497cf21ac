"""The campaign runner: assigns an audience to variants and queues their events.

One campaign at a time is held under a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL), like
follow-up timers, in every worker process. A pass alternates two steps until it runs out
of work or time:

* **assign**: the next chunk of audience members (after `cursor`) gets its variant or the
  holdout and its due time, inserted once per (campaign, customer) together with the new
  cursor, in one transaction;
* **queue**: due recipients become ordinary events through intake (`hub.intake.accept`,
  producer `hub-campaigns`, event id `campaign-<id>-<customer pk>`), so consent, caps,
  quiet hours, digest, dedupe and the decision log apply and the jobs sit on the bulk lane;
  then the recipients are marked queued with their event. A crash between the two leaves
  them due; the next pass posts the same ids, which intake answers as duplicates.

The send rate caps how many events a campaign queues per second; a paused or cancelled
campaign queues nothing more.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from hub import failpoints
from hub.background import Clock, PollingLoop
from hub.campaigns import audience
from hub.campaigns.assignment import HOLDOUT, assign
from hub.campaigns.copy import EVENT_TYPES, PRODUCER
from hub.campaigns.model import CampaignState
from hub.campaigns.schedule import next_local, parse_hhmm
from hub.campaigns.store import cancel_pending
from hub.db import Database
from hub.events import EventIn
from hub.intake import accept
from hub.logs import get_logger
from hub.models import Campaign, CampaignRecipient, Customer, Event

log = get_logger("campaigns")
CHUNK = 2_000
SLICE_SECONDS = 5.0  # one campaign's pass before the lease is handed back
BURST_SECONDS = 2.0  # a rate-capped campaign never makes up more than this after a pause
# Crash points (HUB_FAILPOINT) for the kill -9 tests: after a chunk of recipients was
# assigned, and after their events were accepted but before the recipients say so.
ASSIGNED, QUEUED = "campaign_assigned", "campaign_queued"



def event_id(campaign_id: int, customer_pk: int) -> str:
    """The deterministic id of a recipient's event."""
    return f"campaign-{campaign_id}-{customer_pk}"


def claim(db: Database, owner: str, now: datetime, lease_seconds: float) -> int | None:
    """Leases one campaign with work to `owner` (no two live processes hold the same)."""
    due = or_(Campaign.state == CampaignState.RUNNING,
              and_(Campaign.state == CampaignState.SCHEDULED, Campaign.start_at <= now))
    free = or_(Campaign.lease_until.is_(None), Campaign.lease_until < now)
    with db.transaction() as session:
        query = (select(Campaign.id).where(due, free)
                 .order_by(Campaign.updated_at, Campaign.id).limit(1))
        if db.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        found = session.scalar(query)
        if found is None:
            return None
        return session.scalar(update(Campaign).where(Campaign.id == found, due, free)
                              .values(lease_owner=owner,
                                      lease_until=now + timedelta(seconds=lease_seconds))
                              .returning(Campaign.id))


class Pass:
    """One leased pass over a campaign: start it if due, then assign and queue."""

    def __init__(self, db: Database, campaign_id: int, owner: str, clock: Clock,
                 lease_seconds: float) -> None:
        self.db, self.id, self.owner, self.clock = db, campaign_id, owner, clock
        self.lease = timedelta(seconds=lease_seconds)
        self.queued = 0

    def run(self, slice_seconds: float = SLICE_SECONDS) -> int:
        """Works until there is nothing to do or the slice is over; returns events queued."""
        ends = time.monotonic() + slice_seconds
        started = self._start()
        if started is None:
            return 0
        with self.db.sessions() as reader:
            members = itertools.dropwhile(
                lambda pk: pk <= started.cursor,
                audience.members(reader, started.tenant, started.audience_id))
            while time.monotonic() < ends:
                campaign = self._still_ours()
                if campaign is None:
                    break
                assigned = 0 if campaign.materialised else self._assign(campaign, members)
                queued = self._queue(campaign)
                if not assigned and not queued:
                    self._complete_if_done()
                    break
        self._hand_back()
        return self.queued

    # -- state ------------------------------------------------------------------------------

    def _start(self) -> Campaign | None:
        now = self.clock()
        with self.db.transaction() as session:
            row = session.get(Campaign, self.id)
            if row is None or row.lease_owner != self.owner:
                return None
            if row.state == CampaignState.SCHEDULED:
                row.state, row.started_at = CampaignState.RUNNING, now
                log.info("campaign_started", campaign=row.id)
            return row if row.state == CampaignState.RUNNING else None

    def _still_ours(self) -> Campaign | None:
        """Extends the lease while the campaign runs and is ours; None otherwise (paused,
        cancelled, or the lease lost)."""
        now = self.clock()
        with self.db.transaction() as session:
            held = session.scalar(
                update(Campaign).where(Campaign.id == self.id, Campaign.lease_owner == self.owner,
                                       Campaign.state == CampaignState.RUNNING)
                .values(lease_until=now + self.lease).returning(Campaign.id))
            return session.get(Campaign, self.id) if held else None

    def _hand_back(self) -> None:
        with self.db.transaction() as session:
            session.execute(update(Campaign).where(Campaign.id == self.id,
                                                   Campaign.lease_owner == self.owner)
                            .values(lease_owner=None, lease_until=None))

    def _complete_if_done(self) -> None:
        """Completes the campaign once every member is assigned and none waits. Read in the
        transaction, not from the iteration's copy: the `_assign` that found the audience
        exhausted has just set `materialised`, and a pass that saw it stale returned with
        the campaign still running and nothing queued, as if idle."""
        with self.db.transaction() as session:
            if not session.scalar(select(Campaign.materialised).where(Campaign.id == self.id)):
                return
            waiting = session.scalar(select(func.count()).select_from(CampaignRecipient).where(
                CampaignRecipient.campaign_id == self.id, CampaignRecipient.state == "assigned"))
            if not waiting:
                session.execute(update(Campaign).where(
                    Campaign.id == self.id, Campaign.state == CampaignState.RUNNING)
                    .values(state=CampaignState.COMPLETED, finished_at=self.clock()))
                log.info("campaign_completed", campaign=self.id)

    # -- assign -----------------------------------------------------------------------------

    def _assign(self, campaign: Campaign, members: Iterator[int]) -> int:
        """Assigns the next chunk of members; marks the campaign materialised at the end."""
        pks = list(itertools.islice(members, CHUNK))
        if not pks:
            with self.db.transaction() as session:
                size = session.scalar(select(func.count()).select_from(CampaignRecipient)
                                      .where(CampaignRecipient.campaign_id == self.id))
                session.execute(update(Campaign).where(Campaign.id == self.id)
                                .values(materialised=True, audience_size=size))
            return 0
        rows = self._recipients(campaign, pks)
        try:
            with self.db.transaction() as session:
                if rows:
                    session.execute(self._insert_once(), rows)
                session.execute(update(Campaign).where(Campaign.id == self.id)
                                .values(cursor=pks[-1]))
        except IntegrityError:  # a customer erased since the read: assign the chunk again
            log.warning("campaign_chunk_retry", campaign=self.id)
            return 1
        failpoints.reach(ASSIGNED)
        return len(pks)

    def _recipients(self, campaign: Campaign, pks: list[int]) -> list[dict[str, Any]]:
        with self.db.sessions() as session:
            customers = session.execute(select(Customer.id, Customer.external_id,
                                               Customer.time_zone)
                                        .where(Customer.id.in_(pks))).all()
        variants = [(v["name"], int(v["weight"])) for v in campaign.variants]
        started = campaign.started_at or self.clock()
        at = parse_hhmm(campaign.local_time) if campaign.local_time else None
        now, rows = self.clock(), []
        for pk, external_id, time_zone in customers:
            variant = assign(campaign.seed, campaign.id, external_id, variants,
                             campaign.holdout_percent)
            rows.append({"campaign_id": campaign.id, "customer_pk": pk, "variant": variant,
                         "state": "holdout" if variant == HOLDOUT else "assigned",
                         "send_at": next_local(at, time_zone, started) if at else started,
                         "created_at": now})
        return rows

    def _insert_once(self) -> Any:
        dialect_insert = pg_insert if self.db.dialect == "postgresql" else sqlite_insert
        return dialect_insert(CampaignRecipient).on_conflict_do_nothing(
            index_elements=["campaign_id", "customer_pk"])

    # -- queue ------------------------------------------------------------------------------

    def _budget(self, campaign: Campaign, now: datetime) -> int:
        """How many events the send rate allows now."""
        if campaign.send_rate is None:
            return CHUNK
        since = campaign.released_at or campaign.started_at or now
        seconds = min((now - since).total_seconds(), BURST_SECONDS)
        return max(0, min(CHUNK, int(campaign.send_rate * seconds)))

    def _queue(self, campaign: Campaign) -> int:
        """Due recipients (up to the budget) become events; returns how many."""
        now = self.clock()
        budget = self._budget(campaign, now)
        if budget <= 0:
            return 0
        with self.db.sessions() as session:
            due = session.execute(
                select(CampaignRecipient.id, CampaignRecipient.customer_pk,
                       CampaignRecipient.variant, CampaignRecipient.send_at, Customer.external_id)
                .join(Customer, Customer.id == CampaignRecipient.customer_pk)
                .where(CampaignRecipient.campaign_id == self.id,
                       CampaignRecipient.state == "assigned", CampaignRecipient.send_at <= now)
                .order_by(CampaignRecipient.send_at, CampaignRecipient.id).limit(budget)).all()
        if not due:
            return 0
        accept(self.db, PRODUCER, [self._event(campaign, r) for r in due],
               tenant=campaign.tenant)
        failpoints.reach(QUEUED)
        self._mark_queued(campaign, due, now)
        self.queued += len(due)
        return len(due)

    def _event(self, campaign: Campaign, recipient: Any) -> EventIn:
        ref = {"id": campaign.id, "variant": recipient.variant,
               "channels": list(campaign.channels)}
        return EventIn.model_validate({
            "event_id": event_id(campaign.id, recipient.customer_pk),
            "type": EVENT_TYPES[campaign.category],
            "occurred_at": recipient.send_at.isoformat(),
            "customer": {"id": recipient.external_id}, "data": {"campaign": ref}})

    def _mark_queued(self, campaign: Campaign, due: Sequence[Any], now: datetime) -> None:
        ids = {event_id(campaign.id, r.customer_pk): r.id for r in due}
        with self.db.transaction() as session:
            events = session.execute(select(Event.event_id, Event.id).where(
                Event.producer == PRODUCER, Event.event_id.in_(list(ids)))).all()
            session.execute(update(CampaignRecipient), [
                {"id": ids[eid], "event_pk": pk, "state": "queued"} for eid, pk in events])
            state = session.scalar(select(Campaign.state).where(Campaign.id == self.id)
                                   .with_for_update())
            session.execute(update(Campaign).where(Campaign.id == self.id)
                            .values(released_at=now))
            if state == CampaignState.CANCELLED:  # cancelled while these were accepted
                cancel_pending(session, self.id, now)


class CampaignLoop(PollingLoop):
    """Runs due campaigns every `poll` seconds in a thread of the worker or relay process."""

    kind = "campaign"
    log = log

    def pass_once(self) -> int:
        """One pass over one due campaign; how many recipients it queued."""
        campaign_id = claim(self.db, self.owner, self.clock(), self.lease_seconds)
        if campaign_id is None:
            return 0
        return Pass(self.db, campaign_id, self.owner, self.clock, self.lease_seconds).run()


start_loop = CampaignLoop.start
