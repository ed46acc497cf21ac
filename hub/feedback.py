"""Delivery feedback: signed one-tap rating links (`/f/<token>`), single-use answers and
the optional comment.

A token is short (it goes into an SMS) and names only the request event, the channel, the
score (or `x`: the page with the 0-10 buttons) and the day it was issued. Its MAC also
covers the tenant and the customer key, which the hub reads from the event, so a token
cannot be moved to another event, tenant, customer or score, and stops working when the
customer is erased (the event then names a pseudonym).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hub.customers import customer_key, get_customer, tombstone_key
from hub.db import Database, utcnow
from hub.events import Category, event_types
from hub.logs import get_logger
from hub.models import Event, FeedbackResponse, Notification
from hub.settings import Settings
from hub.webhooks_out import record_status_change

log = get_logger("feedback")

SCORES = range(11)
CHOOSE = "x"  # the token of the page with the 0-10 buttons (one short link for SMS)
_CHANNELS = {"sms": "s", "email": "e", "push": "p", "app_push": "a", "inbox": "i"}
_CHANNEL_NAMES = {v: k for k, v in _CHANNELS.items()}
_EPOCH = date(2024, 1, 1)
_TOKEN = re.compile(r"^([0-9a-z]{1,12})\.([sepai])([0-9ax])([0-9a-z]{1,4})\.([A-Za-z0-9_-]{16})$")
COMMENT_MAX = 1000


class FeedbackState(enum.StrEnum):
    """What a visit of a feedback link did."""

    CHOOSE = "choose"  # the page of 0-10 buttons
    RECORDED = "recorded"
    ALREADY = "already"  # a second use: nothing new written
    INVALID = "invalid"  # forged, altered or for an erased customer
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class TokenScope:
    """What a well-formed token claims (trusted only after `verify`)."""

    event_pk: int
    channel: str
    score: int | None
    day: int
    mac: str


@dataclass(frozen=True, slots=True)
class Visit:
    """The result of opening a feedback link, for the page."""

    state: FeedbackState
    score: int | None = None
    locale: str | None = None
    tenant: str | None = None
    can_comment: bool = False


def _b36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out


def _today(now: datetime | None = None) -> int:
    return ((now or utcnow()).astimezone(UTC).date() - _EPOCH).days


def _mac(settings: Settings, tenant: str, ckey: str, event_pk: int, channel: str,
         score: str, day: int) -> str:
    message = f"hub.feedback.v1|{tenant}|{ckey}|{event_pk}|{channel}|{score}|{day}".encode()
    digest = hmac.new(settings.secret_key.get_secret_value().encode(), message,
                      hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:12]).decode()  # 96 bits, 16 characters


def make_token(settings: Settings, tenant: str, customer_id: str, event_pk: int, channel: str,
               score: int | None, now: datetime | None = None) -> str:
    """A signed token for one score (None: the 0-10 page) of one feedback request event."""
    ckey = customer_key(tombstone_key(settings), tenant, customer_id)
    mark = CHOOSE if score is None else "a" if score == 10 else str(score)
    day = _today(now)
    mac = _mac(settings, tenant, ckey, event_pk, _CHANNELS[channel], mark, day)
    return f"{_b36(event_pk)}.{_CHANNELS[channel]}{mark}{_b36(day)}.{mac}"


def rating_links(settings: Settings, tenant: str, customer_id: str, event_pk: int,
                 channel: str) -> dict[str, str]:
    """`feedback` (the 0-10 page, one short link for SMS and push) and `rate_0`..`rate_10`
    (one-tap links for e-mail), absolute URLs."""
    base = f"{settings.public_base_url.rstrip('/')}/f/"
    links = {"feedback": base + make_token(settings, tenant, customer_id, event_pk, channel,
                                           None)}
    for score in SCORES:
        links[f"rate_{score}"] = base + make_token(settings, tenant, customer_id, event_pk,
                                                   channel, score)
    return links


def parse_token(token: str) -> TokenScope | None:
    """The claims of a well-formed token (not yet verified); None if malformed."""
    found = _TOKEN.match(token)
    if found is None:
        return None
    pk, channel, mark, day, mac = found.groups()
    score = None if mark == CHOOSE else 10 if mark == "a" else int(mark)
    return TokenScope(int(pk, 36), _CHANNEL_NAMES[channel], score, int(day, 36), mac)


def verify(session: Session, settings: Settings, token: str) -> tuple[TokenScope, Event] | None:
    """The scope and request event of an authentic token; None if forged, altered, not a
    feedback request, or its customer was erased. Expiry is checked separately."""
    scope = parse_token(token)
    if scope is None:
        return None
    event = session.get(Event, scope.event_pk)
    etype = event_types().get(event.type) if event is not None else None
    if event is None or etype is None or etype.category is not Category.FEEDBACK:
        return None
    ckey = customer_key(tombstone_key(settings), event.tenant, event.customer_id)
    mark = CHOOSE if scope.score is None else "a" if scope.score == 10 else str(scope.score)
    expected = _mac(settings, event.tenant, ckey, event.id, _CHANNELS[scope.channel], mark,
                    scope.day)
    if not hmac.compare_digest(expected, scope.mac):
        return None
    return scope, event


def expired(settings: Settings, scope: TokenScope, now: datetime | None = None) -> bool:
    """True once the link is older than HUB_FEEDBACK_LINK_DAYS."""
    return _today(now) - scope.day > settings.feedback_link_days


def iso_week(moment: datetime) -> str:
    """The ISO week of an instant (UTC), e.g. `2026-W48`."""
    year, week, _ = moment.astimezone(UTC).isocalendar()
    return f"{year}-W{week:02d}"


def _locale(session: Session, event: Event, channel: str) -> str | None:
    """The language the request was sent in, else the customer's."""
    sent = session.scalar(select(Notification.locale).where(
        Notification.event_pk == event.id, Notification.channel == channel)
        .order_by(Notification.id.desc()).limit(1))
    if sent:
        return sent
    customer = get_customer(session, event.tenant, event.customer_id)
    return customer.locale if customer is not None else None


def visit(db: Database, settings: Settings, token: str) -> Visit:
    """Opens a feedback link: records the score once (single use; a second visit writes
    nothing and reports `already`), or shows the 0-10 page for the short link."""
    with db.transaction() as session:
        found = verify(session, settings, token)
        if found is None:
            return Visit(FeedbackState.INVALID)
        scope, event = found
        locale = _locale(session, event, scope.channel)
        if expired(settings, scope):
            return Visit(FeedbackState.EXPIRED, locale=locale, tenant=event.tenant)
        earlier = session.scalar(select(FeedbackResponse).where(
            FeedbackResponse.event_pk == event.id))
        if earlier is not None:
            open_comment = earlier.comment is None and earlier.customer_key is not None
            return Visit(FeedbackState.ALREADY, earlier.score, locale, event.tenant,
                         can_comment=open_comment and scope.score is not None)
        if scope.score is None:
            return Visit(FeedbackState.CHOOSE, None, locale, event.tenant)
        tenant = event.tenant
        _record(session, settings, scope, event)
    return Visit(FeedbackState.RECORDED, scope.score, locale, tenant, can_comment=True)


def _record(session: Session, settings: Settings, scope: TokenScope, event: Event) -> None:
    """Writes the answer and its webhook in one transaction; a concurrent first use of the
    same request loses on the unique key (the caller's transaction then fails as a whole)."""
    parcel = (event.payload or {}).get("parcel") or {}
    now = utcnow()
    session.add(FeedbackResponse(
        tenant=event.tenant, event_pk=event.id, channel=scope.channel, score=scope.score,
        customer_key=customer_key(tombstone_key(settings), event.tenant, event.customer_id),
        pickup_point=((parcel.get("pickup_point") or {}).get("id") or None),
        carrier=parcel.get("carrier") or None, iso_week=iso_week(now), recorded_at=now))
    session.flush()
    notification = session.scalar(select(Notification).where(
        Notification.event_pk == event.id, Notification.channel == scope.channel)
        .order_by(Notification.id.desc()).limit(1))
    if notification is not None:
        record_status_change(session, event.tenant, notification, "feedback_received",
                             {"score": scope.score})
    log.info("feedback_recorded", event_pk=event.id, channel=scope.channel)


def record_once(db: Database, settings: Settings, token: str) -> Visit:
    """`visit`, where losing a race for the first answer reads as `already`."""
    try:
        return visit(db, settings, token)
    except IntegrityError:
        return visit(db, settings, token)


def comment_form_token(settings: Settings, token: str) -> str:
    """The hidden form field binding a comment to the page of this token (no cookie needed:
    a cross-site form cannot know it without the secret)."""
    message = f"hub.feedback-comment.v1|{token}".encode()
    digest = hmac.new(settings.secret_key.get_secret_value().encode(), message,
                      hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def add_comment(db: Database, settings: Settings, token: str, form_token: str,
                text: str) -> Visit:
    """Stores the comment of an answered request once (bound to the same token); a second
    comment, or one without a recorded score, changes nothing."""
    if not hmac.compare_digest(comment_form_token(settings, token), form_token):
        return Visit(FeedbackState.INVALID)
    with db.transaction() as session:
        found = verify(session, settings, token)
        if found is None or found[0].score is None:
            return Visit(FeedbackState.INVALID)
        scope, event = found
        locale = _locale(session, event, scope.channel)
        row = session.scalar(select(FeedbackResponse).where(
            FeedbackResponse.event_pk == event.id))
        if row is None or expired(settings, scope):
            return Visit(FeedbackState.EXPIRED, locale=locale, tenant=event.tenant)
        if row.comment is None and row.customer_key is not None and text.strip():
            row.comment, row.commented_at = text.strip()[:COMMENT_MAX], utcnow()
            return Visit(FeedbackState.RECORDED, row.score, locale, event.tenant)
        return Visit(FeedbackState.ALREADY, row.score, locale, event.tenant)


def forget_feedback(session: Session, ckey: str) -> int:
    """Erasure: comments (free text) are deleted and the customer key is cleared; the score
    stays with pickup point, carrier and week only (no longer linked to anyone)."""
    rows = list(session.scalars(select(FeedbackResponse).where(
        FeedbackResponse.customer_key == ckey)))
    for row in rows:
        row.comment, row.commented_at, row.customer_key = None, None, None
    return len(rows)


def export_feedback(session: Session, ckey: str) -> list[dict[str, object]]:
    """The customer's feedback answers for a data export."""
    rows = session.scalars(select(FeedbackResponse).where(
        FeedbackResponse.customer_key == ckey).order_by(FeedbackResponse.id))
    return [{"score": r.score, "comment": r.comment, "channel": r.channel,
             "pickup_point": r.pickup_point, "carrier": r.carrier,
             "recorded_at": r.recorded_at.isoformat(),
             "commented_at": r.commented_at.isoformat() if r.commented_at else None}
            for r in rows]
