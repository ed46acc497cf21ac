"""Tracked links of campaign and loyalty messages: `/c/<token>` redirects and their clicks.

A token is 16 characters: a 10-character id derived (HMAC) from the send record's key and
the URL, and a 6-character MAC of that id, both base62. Deriving the id means the render
step needs no store round trip and a retried send (same key, same message) rewrites to the
same tokens, whose rows the send step then inserts with "on conflict do nothing" in the
transaction that opens the send records. The MAC is checked before any lookup, so a forged
token costs no query; the redirect goes only to the URL stored for the id."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from itsdangerous import BadData, URLSafeSerializer
from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from hub import activity
from hub.audience_models import LinkClick, TrackedLink
from hub.db import insert_ignoring, utcnow
from hub.logs import get_logger
from hub.models import Customer
from templates import RenderedMessage, count_segments

if TYPE_CHECKING:
    from hub.delivery import Send

log = get_logger("clicks")
TRACKED_CATEGORIES = frozenset({"marketing", "loyalty"})
PATH = "/c/"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
ID_CHARS, MAC_CHARS = 10, 6
TOKEN_CHARS = ID_CHARS + MAC_CHARS
_TOKEN = re.compile(rf"^[0-9A-Za-z]{{{TOKEN_CHARS}}}$")
# A second click on the same link within this window is the same click (double taps,
# a mail client opening the link twice).
REPEAT_WINDOW = timedelta(minutes=5)
MAX_URL = 2048
_HREF = re.compile(r"""(href\s*=\s*)(["'])(https?://[^"'\s<>]+)\2""", re.IGNORECASE)
_BARE_URL = re.compile(r"""https?://[^\s<>"']+""")
_TRAILING = ".,;:!?)]}'\""
# User agents of link previews and mail scanners that fetch links nobody clicked.
BOT_AGENTS = ("facebookexternalhit", "facebot", "twitterbot", "slackbot", "slack-imgproxy",
              "whatsapp", "telegrambot", "discordbot", "linkedinbot", "skypeuripreview",
              "googlebot", "bingbot", "applebot", "bot/", "crawler", "spider", "preview",
              "googleimageproxy", "yahoomailproxy", "barracuda", "mimecast", "proofpoint")


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def _digest(secret: str, label: str, message: str) -> int:
    mac = hmac.new(secret.encode(), f"{label}\x1f{message}".encode(), hashlib.sha256)
    return int.from_bytes(mac.digest()[:8], "big")


def _mac(secret: str, link_id: str) -> str:
    return _base62(_digest(secret, "tracked-link-mac", link_id) % 62**MAC_CHARS, MAC_CHARS)


def link_id(secret: str, send_key: str, url: str) -> str:
    """The id part of a link's token: the same send and URL always give the same id."""
    return _base62(_digest(secret, "tracked-link", f"{send_key}\x1f{url}") % 62**ID_CHARS,
                   ID_CHARS)


def token_of(secret: str, link: str) -> str:
    """The full token (id + MAC) of a link id."""
    return link + _mac(secret, link)


def read_token(secret: str, token: str) -> str | None:
    """The link id of a well-formed token whose MAC verifies; None for anything else."""
    if not _TOKEN.match(token):
        return None
    link, mac = token[:ID_CHARS], token[ID_CHARS:]
    return link if hmac.compare_digest(mac, _mac(secret, link)) else None


@dataclass(frozen=True, slots=True)
class TrackedUrl:
    """One link of a message: its id (the `token` column), the original URL and the
    `/c/<token>` URL that replaced it."""

    link_id: str
    url: str
    tracked: str


@dataclass(slots=True)
class LinkSet:
    """The tracked links of one message and the campaign they count for."""

    campaign_id: int | None = None
    variant: str | None = None
    links: dict[str, TrackedUrl] = field(default_factory=dict)  # by URL


def campaign_of(payload: dict[str, Any]) -> tuple[int | None, str | None]:
    """`data.campaign = {"id": int, "variant": str}` of a campaign event, else (None, None)."""
    campaign = (payload.get("data") or {}).get("campaign")
    if not isinstance(campaign, dict):
        return None, None
    cid, variant = campaign.get("id"), campaign.get("variant")
    cid = cid if isinstance(cid, int) and not isinstance(cid, bool) and 0 < cid < 2**31 else None
    variant = variant[:64] if isinstance(variant, str) else None
    return cid, variant


class LinkRewriter:
    """Rewrites the http(s) links of one message to `/c/<token>` (the hub's own links, such
    as the preference center and unsubscribe, stay as they are)."""

    def __init__(self, secret: str, base_url: str, send_key: str, links: LinkSet) -> None:
        self.secret, self.base = secret, base_url.rstrip("/")
        self.send_key, self.links = send_key, links

    def track_url(self, url: str) -> str:
        """The tracked URL for `url` (the same one each time in this message)."""
        if url.startswith(self.base + "/") or len(url) > MAX_URL:
            return url
        tracked = self.links.links.get(url)
        if tracked is None:
            link = link_id(self.secret, self.send_key, url)
            tracked = TrackedUrl(link, url, f"{self.base}{PATH}{token_of(self.secret, link)}")
            self.links.links[url] = tracked
        return tracked.tracked

    def text(self, value: str) -> str:
        def bare(match: re.Match[str]) -> str:
            url = match.group(0)
            kept = len(url.rstrip(_TRAILING))
            return self.track_url(url[:kept]) + url[kept:]

        return _BARE_URL.sub(bare, value)

    def html(self, value: str) -> str:
        def href(match: re.Match[str]) -> str:
            url = html.unescape(match.group(3))
            return f"{match.group(1)}{match.group(2)}{self.track_url(url)}{match.group(2)}"

        return _HREF.sub(href, value)

    def parts(self, parts: dict[str, str]) -> dict[str, str]:
        """Every part of the message with its links tracked (HTML: `href`s; else bare URLs)."""
        return {name: self.html(v) if name == "html" else self.text(v)
                for name, v in parts.items()}


def record_links(session: Session, sends: Sequence[Send]) -> None:
    """Inserts the link rows of the sends (in the transaction that opens their records,
    before they are opened); rows a retried send already wrote stay as they are. A link id
    already taken by another send or URL (a 59-bit clash) is put back to its original URL in
    the message, so a click never lands on somebody else's link."""
    wanted = [s for s in sends if s.links is not None and s.links.links]
    if not wanted:
        return
    pks = dict(((t, e), pk) for pk, t, e in session.execute(
        select(Customer.id, Customer.tenant, Customer.external_id).where(
            tuple_(Customer.tenant, Customer.external_id).in_(
                {(s.env.tenant, s.env.customer_id) for s in wanted}))).tuples())
    now, rows = utcnow(), list[dict[str, Any]]()
    for send in wanted:
        pk = pks.get((send.env.tenant, send.env.customer_id))
        assert send.links is not None
        if pk is None:
            continue
        rows.extend({"token": t.link_id, "tenant": send.env.tenant, "customer_pk": pk,
                     "event_pk": send.env.event_pk, "send_key": send.key,
                     "channel": send.env.channel, "campaign_id": send.links.campaign_id,
                     "variant": send.links.variant, "url": t.url, "created_at": now}
                    for t in send.links.links.values())
    insert_ignoring(session, TrackedLink, rows, ["token"])
    stored = {token: (key, url) for token, key, url in session.execute(
        select(TrackedLink.token, TrackedLink.send_key, TrackedLink.url)
        .where(TrackedLink.token.in_([r["token"] for r in rows]))).tuples()}
    for send in wanted:
        assert send.links is not None
        clashes = [t for t in send.links.links.values()
                   if stored.get(t.link_id, (send.key, t.url)) != (send.key, t.url)]
        if clashes:
            _untrack(send, clashes)


def _untrack(send: Send, clashes: list[TrackedUrl]) -> None:
    parts, metadata = dict(send.env.parts), dict(send.env.metadata)
    for clash in clashes:
        for name, value in parts.items():
            parts[name] = value.replace(clash.tracked, html.escape(clash.url)
                                        if name == "html" else clash.url)
        if metadata.get("url") == clash.tracked:
            metadata["url"] = clash.url
        assert send.links is not None
        del send.links.links[clash.url]
    send.env = dataclasses.replace(send.env, parts=parts, metadata=metadata)
    log.warning("tracked_link_clash", idempotency_key=send.key, links=len(clashes))


def is_bot(method: str, user_agent: str | None) -> bool:
    """A request that is not a person clicking: HEAD, no user agent, or a known previewer."""
    agent = (user_agent or "").lower()
    return method.upper() == "HEAD" or not agent or any(b in agent for b in BOT_AGENTS)


@dataclass(frozen=True, slots=True)
class Followed:
    """A followed link: where to redirect, and whether a click was counted."""

    url: str
    counted: bool


def follow(session: Session, link: str, *, counted: bool, now: datetime | None = None
           ) -> Followed | None:
    """The stored URL of a link id, recording a click (unless `counted` is False or the same
    link was clicked within REPEAT_WINDOW); None when no such link exists."""
    row = session.scalar(select(TrackedLink).where(TrackedLink.token == link))
    if row is None:
        return None
    now = now or utcnow()
    if counted:
        recent = session.scalar(select(LinkClick.id).where(
            LinkClick.link_id == row.id, LinkClick.clicked_at > now - REPEAT_WINDOW).limit(1))
        counted = recent is None
    if counted:
        session.add(LinkClick(tenant=row.tenant, link_id=row.id, customer_pk=row.customer_pk,
                              campaign_id=row.campaign_id, variant=row.variant, clicked_at=now))
        activity.note_click(session, row.tenant, row.customer_pk, now)
    return Followed(row.url, counted)


def track_links(secret: str, base_url: str, send_key: str, payload: dict[str, Any],
                rendered: RenderedMessage, metadata: dict[str, Any], *, pixel: bool = False
                ) -> tuple[RenderedMessage, dict[str, Any], LinkSet]:
    """The render step's rewrite of one campaign or loyalty message: its parts and its
    click-through URL (push) point at `/c/<token>`; an SMS is counted again; with `pixel`
    an e-mail also gets the open pixel."""
    campaign_id, variant = campaign_of(payload)
    links = LinkSet(campaign_id, variant)
    rewriter = LinkRewriter(secret, base_url, send_key, links)
    parts = rewriter.parts(rendered.parts)
    if pixel and "html" in parts:
        parts["html"] = with_open_pixel(parts["html"], secret, base_url, send_key)
    metadata = dict(metadata)
    if isinstance(metadata.get("url"), str):
        metadata["url"] = rewriter.track_url(metadata["url"])
    if "sms_segments" in metadata and "body" in parts:
        counted = count_segments(parts["body"])
        metadata |= {"sms_segments": counted.segments, "sms_encoding": str(counted.encoding)}
    return dataclasses.replace(rendered, parts=parts), metadata, links


# --- the optional e-mail open pixel (HUB_EMAIL_OPEN_PIXEL, off by default) ---------------

_PIXEL_SALT = "hub.open-pixel.v1"
# The smallest transparent GIF (1x1).
PIXEL_GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000"
                          "010001000002024401003b")


def with_open_pixel(html_text: str, secret: str, base_url: str, send_key: str) -> str:
    """The e-mail HTML with a 1x1 image whose URL names the send record (signed)."""
    token = URLSafeSerializer(secret, salt=_PIXEL_SALT).dumps(send_key)
    img = (f'<img src="{base_url.rstrip("/")}/o/{token}.gif" width="1" height="1" alt="" '
           'style="display:block;border:0">')
    head, found, tail = html_text.rpartition("</body>")
    return f"{head}{img}{found}{tail}" if found else html_text + img


def read_pixel_token(secret: str, token: str) -> str | None:
    """The send record key of a valid pixel token; None when altered."""
    try:
        value = URLSafeSerializer(secret, salt=_PIXEL_SALT).loads(token)
    except BadData:
        return None
    return value if isinstance(value, str) else None
