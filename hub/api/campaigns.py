"""`/v1/campaigns`: create a campaign (draft), list and read it with its progress, start,
pause, resume or cancel it, and its report per variant. Campaigns belong to the key's
tenant; another tenant's campaign answers 404."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from hub import audiences
from hub.api.auth import require
from hub.api.problems import Problem
from hub.audience_filter import parse_filter
from hub.audience_models import Audience
from hub.campaigns import audience, report, store
from hub.campaigns.copy import EVENT_TYPES, set_key, sources
from hub.campaigns.model import Action, CampaignIn, CampaignState, actions_from
from hub.db import utcnow
from hub.keys import Principal, Scope
from hub.models import Campaign
from templates import Renderer
from templates.inline import FixedSource
from templates.preview import PreviewWarning, preview, sample_payload

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])
Reader = Annotated[Principal, Depends(require(Scope.CAMPAIGNS_READ))]
Writer = Annotated[Principal, Depends(require(Scope.CAMPAIGNS_WRITE))]
CampaignId = Annotated[int, Path(ge=1, le=2**31 - 1)]
# Preview findings that make a variant unusable: nothing would render for a customer.
_BLOCKING = {PreviewWarning.UNDEFINED_VARIABLE, PreviewWarning.SANDBOX_VIOLATION,
             PreviewWarning.TEMPLATE_MISSING, PreviewWarning.RENDER_ERROR}


def _db(request: Request) -> Any:
    return request.app.state.runtime.db


def _renderer(request: Request) -> Renderer:
    renderer: Renderer = request.app.state.runtime.pipeline.stages.renderer
    return renderer


def _window(request: Request) -> timedelta:
    """The attribution window of conversions (HUB_CONVERSION_WINDOW_DAYS)."""
    return timedelta(days=request.app.state.runtime.settings.conversion_window_days)


def check_copy(renderer: Renderer, body: CampaignIn) -> list[dict[str, Any]]:
    """Renders every variant × locale × channel with sample data; a problem that would
    stop a message is a 422, the rest (SMS segments and encoding...) come back as warnings."""
    event_type = EVENT_TYPES[body.category]
    variants = [v.model_dump(mode="json", exclude_none=True) for v in body.variants]
    sets = {set_key("preview", 0, v["name"]): sources(v) for v in variants}
    checker = renderer.with_inline(FixedSource(sets))
    found: list[dict[str, Any]] = []
    blocking: list[dict[str, Any]] = []
    for variant in variants:
        for locale in variant["templates"]:
            payload = sample_payload(event_type, locale, data={
                "campaign": {"id": 0, "variant": variant["name"]}})
            for channel in body.channels:
                result = preview(checker, event_type, channel, locale, "formal",
                                 payload=payload, template_set=set_key("preview", 0,
                                                                       variant["name"]))
                for warning in result.warnings:
                    if warning.code is PreviewWarning.FALLBACK_USED:
                        continue
                    item = {"variant": variant["name"], "locale": locale, "channel": channel,
                            "code": str(warning.code), "message": warning.message}
                    (blocking if warning.code in _BLOCKING else found).append(item)
    if blocking:
        raise Problem(422, "template-error", "a variant's copy does not render; see errors",
                      errors=[{"path": f"variants.{e['variant']}.templates.{e['locale']}."
                               f"{e['channel']}", "message": e["message"], "code": e["code"]}
                              for e in blocking])
    return found


def campaign_json(session: Session, row: Campaign, with_progress: bool = True
                  ) -> dict[str, Any]:
    """The API shape of a campaign (with its progress when asked)."""
    out: dict[str, Any] = {
        "id": row.id, "name": row.name, "audience_id": audience.public_id(session,
                                                                          row.audience_id),
        "category": row.category, "channels": row.channels, "variants": row.variants,
        "holdout_percent": row.holdout_percent,
        "schedule": {"kind": row.schedule, "at": row.start_at.isoformat()
                     if row.schedule == "at" and row.start_at else None,
                     "local_time": row.local_time},
        "send_rate": row.send_rate, "state": row.state,
        "actions": actions_from(CampaignState(row.state)),
        "created_at": row.created_at.isoformat(),
        "started_at": row.started_at.isoformat() if row.started_at else None,
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
    }
    if with_progress:
        out["progress"] = {"audience_size": _audience_size(session, row),
                           **report.progress(session, row.id)}
    return out


def _audience_size(session: Session, row: Campaign) -> int | None:
    """Fixed once every member is assigned; until then the audience's current count."""
    if row.materialised:
        return row.audience_size
    found = session.get(Audience, row.audience_id)
    if found is None:
        return None
    return audiences.count(session, row.tenant, parse_filter(found.filter),
                           row.category).matched


def _owned(session: Session, who: Principal, campaign_id: int) -> Campaign:
    row = store.get(session, who.tenant, campaign_id)
    if row is None:
        raise Problem(404, "not-found", f"No campaign {campaign_id}.")
    return row


@router.post("", status_code=201)
def create_campaign(body: CampaignIn, request: Request, who: Writer) -> dict[str, Any]:
    """Stores a draft campaign after rendering every variant's copy with sample data;
    `warnings` lists what deserves a second look (SMS segments, UCS-2...)."""
    with _db(request).sessions() as session:
        found = audience.resolve(session, who.tenant, body.audience_id)
    if found is None:
        raise Problem(422, "validation", f"unknown audience {body.audience_id!r}",
                      errors=[{"path": "audience_id", "message": "no such audience"}])
    warnings = check_copy(_renderer(request), body)
    with _db(request).transaction() as session:
        row = store.create(session, who.tenant, who.key_id, body, found.id)
        return {**campaign_json(session, row), "warnings": warnings}


@router.get("")
def list_campaigns(request: Request, who: Reader,
                   limit: Annotated[int, Query(ge=1, le=200)] = 50,
                   before: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None
                   ) -> dict[str, Any]:
    """The tenant's campaigns, newest first; `next` is the `before` of the next page."""
    with _db(request).sessions() as session:
        rows = store.listing(session, who.tenant, limit, before)
        items = [campaign_json(session, r, with_progress=False) for r in rows]
    return {"items": items, "next": rows[-1].id if len(rows) == limit else None}


@router.get("/{campaign_id}")
def get_campaign(campaign_id: CampaignId, request: Request, who: Reader) -> dict[str, Any]:
    """The campaign and its progress: audience size, assigned per variant and holdout,
    queued, sent, skipped."""
    with _db(request).sessions() as session:
        return campaign_json(session, _owned(session, who, campaign_id))


@router.get("/{campaign_id}/report")
def campaign_report(campaign_id: CampaignId, request: Request, who: Reader
                    ) -> dict[str, Any]:
    """Per variant and for the holdout: assigned, sent, skipped by reason, delivered,
    opened, clicked, unsubscribed, converted, the conversion rate with its 95 % Wilson
    interval, and the lift against the holdout with a two-proportion z-test."""
    with _db(request).sessions() as session:
        row = _owned(session, who, campaign_id)
        return {"campaign": campaign_json(session, row),
                **report.report(session, row, _window(request))}


def _act(request: Request, who: Principal, campaign_id: int, action: Action
         ) -> dict[str, Any]:
    db = _db(request)
    try:
        row = store.act(db, who.tenant, campaign_id, action, utcnow())
    except store.IllegalTransition as exc:
        raise Problem(409, "campaign-state", str(exc), state=exc.state.value,
                      allowed_actions=exc.allowed) from None
    if row is None:
        raise Problem(404, "not-found", f"No campaign {campaign_id}.")
    with db.sessions() as session:
        return campaign_json(session, row)


def _action_route(action: Action) -> None:
    async def endpoint(campaign_id: CampaignId, request: Request, who: Writer
                       ) -> dict[str, Any]:
        return await run_in_threadpool(_act, request, who, campaign_id, action)

    endpoint.__doc__ = {
        Action.START: "Starts a draft: it runs at its schedule (now, at, or local time).",
        Action.PAUSE: "Stops queueing new messages (those already queued still go).",
        Action.RESUME: "Continues a paused campaign.",
        Action.CANCEL: "Ends the campaign; queued messages not yet sent are cancelled.",
    }[action]
    router.add_api_route(f"/{{campaign_id}}/{action.value}", endpoint, methods=["POST"],
                         name=f"{action.value}_campaign",
                         responses={409: {"description": "not allowed in this state",
                                          "content": {"application/problem+json": {}}}})


for _action in Action:
    _action_route(_action)
