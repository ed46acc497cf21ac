"""Template preview API (`templates:read`): coverage, preview with warnings; test-send
(`templates:send`) to allow-listed recipients only, rate-limited and recorded."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from channels import OutgoingMessage
from hub import relay_guard
from hub.api.auth import require
from hub.api.problems import Problem
from hub.db import utcnow
from hub.events import event_types
from hub.keys import Principal, Scope
from templates import CHANNELS, DIGEST, LOCALES, TONES, Coverage, Renderer
from templates.preview import Preview, coverage_matrix, preview, sample_payload
from templates.samples import PROFILES

api = APIRouter(prefix="/v1/templates", tags=["templates"])

Channel = Literal["sms", "email", "push", "app_push", "inbox"]
Locale = Literal["pl", "en", "uk", "de"]
Tone = Literal["formal", "informal"]
Reader = Annotated[Principal, Depends(require(Scope.TEMPLATES_READ))]
Sender = Annotated[Principal, Depends(require(Scope.TEMPLATES_SEND))]


class PreviewIn(BaseModel):
    """Which template to render, and optional data replacing the sample's."""

    model_config = ConfigDict(extra="forbid")
    event_type: Annotated[str, Field(max_length=64)]
    channel: Channel
    locale: Locale = "pl"
    tone: Tone = "formal"
    segment: Literal["individual", "business"] = "individual"
    name: Annotated[str, Field(max_length=200)] | None = None
    time_zone: Annotated[str, Field(max_length=64)] = "Europe/Warsaw"
    parcel: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    items: Annotated[list[dict[str, Any]], Field(max_length=50)] | None = None
    now: AwareDatetime | None = Field(default=None, description="Reference time for 'jutro'.")


class TestSendIn(PreviewIn):
    __test__ = False  # not a pytest test class
    channel: Literal["sms", "email"]  # a push endpoint is no address an allow-list can hold
    to: Annotated[str, Field(min_length=3, max_length=320, description="Phone (E.164) or "
                             "e-mail address on the allow-list (HUB_TEST_RECIPIENTS).")]


class WarningOut(BaseModel):
    code: str
    message: str


class SmsOut(BaseModel):
    encoding: str
    segments: int
    units: int
    budget: int
    transliterated: bool
    over_budget: bool


class PreviewOut(BaseModel):
    ok: bool
    event_type: str
    channel: str
    locale: str | None = None
    tone: str | None = None
    template: str | None = None
    fallbacks: list[str] = []
    parts: dict[str, str] = {}
    sms: SmsOut | None = None
    html_bytes: int = 0
    warnings: list[WarningOut] = []


class CellOut(BaseModel):
    event_type: str
    channel: str
    locale: str
    tone: str
    status: Coverage
    template: str | None


class CatalogOut(BaseModel):
    event_types: list[str]
    channels: list[str]
    locales: list[str]
    tones: list[str]
    summary: dict[str, int]
    coverage: list[CellOut]


class TestSendOut(BaseModel):
    __test__ = False  # not a pytest test class
    id: int
    sent: bool
    provider_message_id: str | None = None
    error: str | None = None
    preview: PreviewOut


def renderer_of(request: Request) -> Renderer:
    renderer: Renderer = request.app.state.runtime.pipeline.stages.renderer
    return renderer


def known_types() -> list[str]:
    return sorted(event_types())


def run_preview(renderer: Renderer, body: PreviewIn) -> PreviewOut:
    """Renders the request's template; unknown event types are a 422."""
    if body.event_type not in (*known_types(), DIGEST):
        raise Problem(422, "validation", f"unknown event type {body.event_type!r}",
                      known=[*known_types(), DIGEST])
    payload = sample_payload(body.event_type, body.locale, body.parcel, body.data)
    profile = {"name": body.name or _sample_name(body.locale), "segment": body.segment,
               "time_zone": body.time_zone}
    result = preview(renderer, body.event_type, body.channel, body.locale, body.tone,
                     payload=payload, profile=profile, items=body.items, now=body.now)
    return to_out(body.event_type, body.channel, result)


def _sample_name(locale: str) -> str:
    return str(PROFILES.get(locale, PROFILES["pl"])["name"])


def to_out(event_type: str, channel: str, result: Preview) -> PreviewOut:
    """The API shape of a preview."""
    warnings = [WarningOut(code=w.code, message=w.message) for w in result.warnings]
    message = result.message
    if message is None:
        return PreviewOut(ok=False, event_type=event_type, channel=channel, warnings=warnings)
    sms = message.sms
    return PreviewOut(
        ok=True, event_type=event_type, channel=channel, locale=message.locale,
        tone=message.tone, template=message.template, fallbacks=list(message.fallbacks),
        parts=message.parts, html_bytes=result.html_bytes, warnings=warnings,
        sms=SmsOut(encoding=sms.encoding, segments=sms.segments, units=sms.units,
                   budget=sms.budget, transliterated=sms.transliterated,
                   over_budget=sms.over_budget) if sms else None,
    )


@api.get("", response_model=CatalogOut)
def list_templates(request: Request,
                   _who: Reader) -> CatalogOut:
    """Every template cell (event type × channel × locale × tone): present, fallback, missing."""
    cells = coverage_matrix(renderer_of(request), known_types())
    summary = {status.value: sum(c.status is status for c in cells) for status in Coverage}
    return CatalogOut(
        event_types=[*known_types(), DIGEST], channels=list(CHANNELS), locales=list(LOCALES),
        tones=list(TONES), summary=summary,
        coverage=[CellOut(event_type=c.event_type, channel=c.channel, locale=c.locale,
                          tone=c.tone, status=c.status, template=c.template) for c in cells],
    )


@api.post("/preview", response_model=PreviewOut)
def preview_template(body: PreviewIn, request: Request,
                     _who: Reader) -> PreviewOut:
    """Renders one template with sample or given data; rendering problems come back as
    warnings (`ok: false` when nothing could be rendered)."""
    return run_preview(renderer_of(request), body)


class TestSendRecordOut(BaseModel):
    __test__ = False  # not a pytest test class
    id: int
    key_id: str
    recipient: str
    event_type: str
    channel: str
    locale: str
    result: str
    provider_message_id: str | None
    at: datetime




def _admit(request: Request, who: Principal, body: TestSendIn, address: str) -> tuple[int, str]:
    """Rate limit, allow-list and suppressions in one transaction; the attempt's record."""
    runtime = request.app.state.runtime
    attempt = relay_guard.Attempt(who.tenant, who.key_id, body.channel, address,
                                  body.event_type, body.locale)
    with runtime.db.transaction() as session:
        wait = relay_guard.retry_after(session, runtime.settings, who.key_id, utcnow())
        if wait is not None:
            raise Problem(429, "rate-limited", f"Too many test-sends; retry in {wait} s.",
                          retry_after=wait)
        row = relay_guard.admit(session, runtime.settings, attempt)
        return row.id, row.result


_REFUSED = {
    relay_guard.TestSendResult.NOT_ALLOWED: (
        403, "recipient-not-allowed", "The recipient is not on the test-send allow-list "
        "(HUB_TEST_RECIPIENTS)."),
    relay_guard.TestSendResult.SUPPRESSED: (
        409, "recipient-suppressed", "The recipient opted out (STOP) or is suppressed on "
        "this channel."),
}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {}}}


@api.post("/test-send", response_model=TestSendOut, responses={
    403: _problem("scope missing or recipient not allowed"),
    409: _problem("recipient suppressed (STOP, bounce)"),
    429: _problem("rate limited; see Retry-After")})
async def test_send(body: TestSendIn, request: Request, who: Sender) -> TestSendOut:
    """Renders the template and sends it through the channel's real transport, only to an
    allow-listed, unsuppressed recipient, at most HUB_TEST_SEND_PER_MINUTE/PER_DAY per key;
    every attempt is recorded (GET /v1/templates/test-sends)."""
    try:
        address = relay_guard.normalize_recipient(body.channel, body.to)
    except ValueError as exc:
        raise Problem(422, "validation", f"'to' is not a valid {body.channel} address: {exc}"
                      ) from None
    out = run_preview(renderer_of(request), body)
    if not out.ok:
        raise Problem(422, "template-error", "the template did not render; see warnings",
                      warnings=[w.model_dump() for w in out.warnings])
    adapter = request.app.state.runtime.pipeline.stages.transports.get(body.channel)
    if adapter is None:
        raise Problem(503, "channel-unavailable", f"no transport for {body.channel}")
    row_id, verdict = await run_in_threadpool(_admit, request, who, body, address)
    if verdict in _REFUSED:
        status, slug, detail = _REFUSED[relay_guard.TestSendResult(verdict)]
        raise Problem(status, slug, detail, test_send_id=row_id)
    message = OutgoingMessage(
        f"test-send:{uuid.uuid4().hex}", body.channel, address, out.parts,
        out.locale or body.locale,
        {"event_type": body.event_type, "test_send": True, "requested_by": who.key_id,
         "sent_at": datetime.now().astimezone().isoformat()})
    result = await run_in_threadpool(adapter.send, message)

    def record() -> None:
        with request.app.state.runtime.db.transaction() as session:
            relay_guard.finish(session, row_id, result.ok, result.provider_message_id)

    await run_in_threadpool(record)
    return TestSendOut(id=row_id, sent=result.ok, provider_message_id=result.provider_message_id,
                       error=result.error, preview=out)


@api.get("/test-sends", response_model=list[TestSendRecordOut])
def test_sends(request: Request, who: Sender,
               limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[TestSendRecordOut]:
    """The tenant's latest test-sends (recipients masked), newest first, for operators."""
    with request.app.state.runtime.db.sessions() as session:
        rows = relay_guard.recent(session, who.tenant, limit)
        return [TestSendRecordOut(id=r.id, key_id=r.key_id, recipient=r.recipient,
                                  event_type=r.event_type, channel=r.channel,
                                  locale=r.locale, result=r.result,
                                  provider_message_id=r.provider_message_id, at=r.at)
                for r in rows]


def _router() -> APIRouter:
    from hub.web.templates.pages import router as pages

    combined = APIRouter()
    combined.include_router(api)
    combined.include_router(pages)
    return combined


router = _router()
