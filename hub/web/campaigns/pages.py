"""`/ui/campaigns` (issue 13 item 8): the list, a new campaign with a live audience count
and a variant editor with previews per locale and channel, and a campaign's results with a
chart per variant (95 % intervals, inline SVG). Polish and English (`?lang=en`).

Same login, sessions and CSRF rules as the template pages (hub.web.templates): state
changes are forms carrying the session's HMAC token, checked against the Origin header; the
live count and preview send the token in `X-CSRF`. What a page offers follows the key's
scopes (`campaigns:read`, `campaigns:write`, `audiences:read`, `audiences:write`). The work
itself is the API's (hub.api.campaigns, hub.audiences, hub.campaigns).
"""

from __future__ import annotations

import json
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from hub import audiences
from hub.api.campaigns import campaign_json, check_copy
from hub.api.problems import Problem
from hub.api.templates import renderer_of, to_out
from hub.audience_filter import parse_filter
from hub.campaigns import audience as campaign_audience
from hub.campaigns import report, store
from hub.campaigns.copy import EVENT_TYPES, set_key, sources
from hub.campaigns.model import Action, CampaignIn
from hub.db import utcnow
from hub.keys import Scope
from hub.web.campaigns.chart import Estimate, chart, percent, points
from hub.web.campaigns.form import (
    CHANNELS,
    COPY_CHANNELS,
    FORM_LOCALES,
    VARIANTS,
    campaign_body,
)
from hub.web.templates import sessions
from hub.web.templates.pages import _same_origin, _user, html_with_fetch
from hub.web.templates.sessions import COOKIE, PageUser
from templates.inline import PARTS, FixedSource
from templates.preview import preview, sample_payload

HERE = Path(__file__).parent
PAGES = Environment(loader=FileSystemLoader(HERE), autoescape=select_autoescape(["html"]),
                    trim_blocks=True, lstrip_blocks=True)
TEXT: dict[str, dict[str, str]] = tomllib.loads((HERE / "messages.toml").read_text("utf-8"))
EXAMPLE_FILTER = {"all": [{"field": "locale", "op": "in", "value": ["pl", "en"]},
                          {"consent": {"purpose": "marketing", "channels": ["email"]}}]}
MAX_FORM_BYTES = 256 * 1024

router = APIRouter(prefix="/ui/campaigns", include_in_schema=False)


def _lang(value: str | None) -> str:
    return value if value in ("pl", "en") else "pl"


def _db(request: Request) -> Any:
    return request.app.state.runtime.db


def _render(name: str, request: Request, who: PageUser, lang: str, status: int = 200,
            **values: Any) -> HTMLResponse:
    csrf = sessions.csrf_token(request.app.state.runtime.settings,
                               str(request.cookies.get(COOKIE)))
    body = PAGES.get_template(name).render(t=TEXT[lang], lang=lang, who=who, csrf=csrf,
                                           can=lambda s: who.allows(Scope(s)), **values)
    return html_with_fetch(body, status)


def _login() -> RedirectResponse:
    return RedirectResponse("/ui/login", status_code=303)


def _refused(lang: str, scope: Scope) -> HTMLResponse:
    return html_with_fetch(f"<!DOCTYPE html><title>403</title><p>{TEXT[lang]['forbidden']}: "
                           f"{scope.value}</p>", 403)


def _csrf_ok(request: Request, presented: str) -> bool:
    return _same_origin(request) and sessions.csrf_ok(
        request.app.state.runtime.settings, request.cookies.get(COOKIE), presented)


@router.get("", response_class=HTMLResponse)
def campaigns(request: Request, lang: str | None = None) -> Response:
    """The tenant's campaigns, newest first, with their state and progress."""
    who, lang = _user(request), _lang(lang)
    if who is None:
        return _login()
    if not who.allows(Scope.CAMPAIGNS_READ):
        return _refused(lang, Scope.CAMPAIGNS_READ)
    with _db(request).sessions() as session:
        rows = [campaign_json(session, r) for r in store.listing(session, who.tenant, 100)]
    return _render("list.html", request, who, lang, rows=rows)


def _audiences(request: Request, who: PageUser) -> list[Any]:
    if not who.allows(Scope.AUDIENCES_READ):
        return []
    with _db(request).sessions() as session:
        return audiences.listing(session, who.tenant, 200)


def _new_page(request: Request, who: PageUser, lang: str, fields: dict[str, str],
              channels: list[str], errors: list[str] | None = None,
              status: int = 200) -> HTMLResponse:
    return _render("new.html", request, who, lang, status, fields=fields, channels=channels,
                   errors=errors or [], audience_list=_audiences(request, who),
                   example_filter=json.dumps(EXAMPLE_FILTER, indent=2), variants=VARIANTS,
                   locales=FORM_LOCALES, all_channels=CHANNELS,
                   copy_channels=COPY_CHANNELS, parts=PARTS)


@router.get("/new", response_class=HTMLResponse)
def new_campaign(request: Request, lang: str | None = None) -> Response:
    """The form: audience (existing, or a new filter with its live count), variants with a
    live preview, category, channels, holdout, schedule."""
    who, lang = _user(request), _lang(lang)
    if who is None:
        return _login()
    if not who.allows(Scope.CAMPAIGNS_WRITE):
        return _refused(lang, Scope.CAMPAIGNS_WRITE)
    return _new_page(request, who, lang, {"holdout_percent": "10", "v0.name": "a",
                                          "v0.weight": "50", "v1.name": "b",
                                          "v1.weight": "50"}, ["email"])


async def _form(request: Request) -> tuple[dict[str, str], list[str]]:
    """The posted form as single values plus the repeated `channels`."""
    raw = (await request.body())[:MAX_FORM_BYTES].decode("utf-8", "replace")
    pairs = parse_qsl(raw, keep_blank_values=True, max_num_fields=400)
    fields = {k: v for k, v in pairs if k != "channels"}
    return fields, [v for k, v in pairs if k == "channels" and v in CHANNELS]


def _errors_of(exc: ValidationError | Problem | ValueError) -> list[str]:
    if isinstance(exc, ValidationError):
        return [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
    if isinstance(exc, Problem):
        return [f"{e.get('path', '')}: {e.get('message', '')}"
                for e in exc.extra.get("errors", [])] or [exc.detail]
    return [str(exc)]


def _create(request: Request, who: PageUser, fields: dict[str, str], channels: list[str]
            ) -> int:
    """Stores the audience (when a new one is asked for) and the draft campaign; raises
    ValidationError, Problem or ValueError with what to fix (nothing is stored then)."""
    db, renderer = _db(request), renderer_of(request)
    new_audience = fields.get("audience_mode") == "new"
    if new_audience:
        if not who.allows(Scope.AUDIENCES_WRITE):
            raise ValueError(f"audience: {Scope.AUDIENCES_WRITE.value}")
        audience_filter = parse_filter(json.loads(fields.get("audience_filter") or "null"))
        if not fields.get("audience_name", "").strip():
            raise ValueError("audience_name: required")
    body = CampaignIn.model_validate(campaign_body(
        fields, channels, "aud_new" if new_audience else fields.get("audience_id", "")))
    check_copy(renderer, body)
    with db.transaction() as session:
        if new_audience:
            found = audiences.create(session, who.tenant, who.producer,
                                     fields["audience_name"].strip()[:200], audience_filter,
                                     body.category)
        else:
            found = campaign_audience.resolve(session, who.tenant, body.audience_id)
            if found is None:
                raise ValueError("audience_id: no such audience")
        return int(store.create(session, who.tenant, who.key_id, body, found.id).id)


@router.post("/new")
async def create_campaign(request: Request, lang: str | None = None) -> Response:
    """Creates the draft (and the new audience) and opens its page; the form comes back
    with the problems otherwise."""
    who = _user(request)
    fields, channels = await _form(request)
    lang = _lang(fields.get("lang") or lang)
    if who is None:
        return _login()
    if not _csrf_ok(request, fields.get("csrf", "")):
        return _refused(lang, Scope.CAMPAIGNS_WRITE)
    if not who.allows(Scope.CAMPAIGNS_WRITE):
        return _refused(lang, Scope.CAMPAIGNS_WRITE)
    try:
        campaign_id = await run_in_threadpool(_create, request, who, fields, channels)
    except (ValidationError, Problem, ValueError) as exc:
        return await run_in_threadpool(_new_page, request, who, lang, fields, channels,
                                       _errors_of(exc), 422)
    return RedirectResponse(f"/ui/campaigns/{campaign_id}?" + urlencode({"lang": lang}),
                            status_code=303)


def _charts(groups: list[dict[str, Any]], lang: str) -> list[dict[str, Any]]:
    """One chart per variant: its conversion rate and 95 % interval against the holdout's."""
    holdout = next((g for g in groups if g["variant"] == "holdout"), None)

    def estimate(group: dict[str, Any], label: str, is_holdout: bool = False) -> Estimate:
        low, high = group.get("conversion_rate_ci95") or (None, None)
        return Estimate(label, group.get("conversion_rate"), low, high, is_holdout)

    out = []
    for group in groups:
        if group["variant"] == "holdout":
            continue
        rows = [estimate(group, group["variant"])]
        if holdout is not None:
            rows.append(estimate(holdout, TEXT[lang]["holdout"], True))
        out.append({"group": group, "chart": chart(rows, lang)})
    return out


@router.get("/{campaign_id}", response_class=HTMLResponse)
def campaign_page(campaign_id: int, request: Request, lang: str | None = None) -> Response:
    """A campaign: state and actions, progress, and results per variant with charts."""
    who, lang = _user(request), _lang(lang)
    if who is None:
        return _login()
    if not who.allows(Scope.CAMPAIGNS_READ):
        return _refused(lang, Scope.CAMPAIGNS_READ)
    settings = request.app.state.runtime.settings
    window = timedelta(days=getattr(settings, "conversion_window_days", 7))
    with _db(request).sessions() as session:
        row = store.get(session, who.tenant, campaign_id) if campaign_id < 2**31 else None
        if row is None:
            return html_with_fetch("<!DOCTYPE html><title>404</title>", 404)
        campaign = campaign_json(session, row)
        results = report.report(session, row, window)
        named = audiences.get(session, who.tenant, str(campaign["audience_id"]))
    return _render("results.html", request, who, lang, c=campaign, results=results,
                   charts=_charts(results["groups"], lang), percent=percent, points=points,
                   audience_name=named.name if named is not None else None)


@router.post("/{campaign_id}/action")
async def act(campaign_id: int, request: Request) -> Response:
    """start, pause, resume or cancel (as the campaign's state allows)."""
    who = _user(request)
    fields, _ = await _form(request)
    lang = _lang(fields.get("lang"))
    if who is None:
        return _login()
    if not _csrf_ok(request, fields.get("csrf", "")) or not who.allows(Scope.CAMPAIGNS_WRITE):
        return _refused(lang, Scope.CAMPAIGNS_WRITE)
    try:
        action = Action(fields.get("action", ""))
        row = await run_in_threadpool(store.act, _db(request), who.tenant, campaign_id,
                                      action, utcnow())
    except (ValueError, store.IllegalTransition):  # unknown action, or not in this state
        return html_with_fetch("<!DOCTYPE html><title>409</title>", 409)
    if row is None:  # no such campaign of this tenant
        return html_with_fetch("<!DOCTYPE html><title>404</title>", 404)
    return RedirectResponse(f"/ui/campaigns/{campaign_id}?" + urlencode({"lang": lang}),
                            status_code=303)


def _live(request: Request) -> PageUser | None:
    who = _user(request)
    if who is None or not _csrf_ok(request, request.headers.get("x-csrf", "")):
        return None
    return who


@router.post("/audience-count")
async def audience_count(request: Request) -> Response:
    """The live count: JSON {filter, purpose} in; matched and reachable per channel out (or
    the filter's problem)."""
    who = _live(request)
    if who is None or not who.allows(Scope.AUDIENCES_READ):
        return JSONResponse({"error": "forbidden"}, 403)
    try:
        body = json.loads((await request.body())[:MAX_FORM_BYTES])
        audience_filter = parse_filter(body["filter"])
        purpose = body.get("purpose") if body.get("purpose") in ("marketing", "loyalty") else (
            "marketing")
    except (ValueError, KeyError, TypeError) as exc:  # ValidationError is a ValueError
        problem = _errors_of(exc)[0] if isinstance(exc, ValueError) else f"missing {exc}"
        return JSONResponse({"problem": problem})

    def count() -> Any:
        with _db(request).sessions() as session:
            return audiences.count(session, who.tenant, audience_filter, purpose)

    found = await run_in_threadpool(count)
    return JSONResponse({"matched": found.matched, "reachable": found.reachable})


def _previews(request: Request, category: str, channels: list[str],
              variant: dict[str, Any]) -> dict[str, Any]:
    """Every locale × channel of one variant rendered with sample data."""
    event_type = EVENT_TYPES[category]
    key = set_key("preview", 0, variant["name"] or "v")
    checker = renderer_of(request).with_inline(FixedSource({key: sources(variant)}))
    out = {}
    for locale in variant["templates"]:
        payload = sample_payload(event_type, locale, data={
            "campaign": {"id": 0, "variant": variant["name"]}})
        for channel in channels:
            result = preview(checker, event_type, channel, locale, "formal", payload=payload,
                             template_set=key)
            out[f"{locale}.{channel}"] = to_out(event_type, channel, result).model_dump()
    return out


@router.post("/preview")
async def variant_preview(request: Request) -> Response:
    """The variant editor's live preview: the form's fields (JSON) in, one rendering per
    locale × channel of variant `index` with its warnings out."""
    who = _live(request)
    if who is None or not who.allows(Scope.CAMPAIGNS_WRITE):
        return JSONResponse({"error": "forbidden"}, 403)
    try:
        body = json.loads((await request.body())[:MAX_FORM_BYTES])
        fields = {str(k): str(v) for k, v in body["fields"].items()}
        channels = [c for c in body.get("channels", []) if c in CHANNELS]
        index = int(body.get("index", 0))
        category = fields.get("category", "marketing")
        built = campaign_body(fields, channels, "aud_preview")["variants"]
        variant = next(v for v in built if v["name"] == fields.get(f"v{index}.name", ""))
        CampaignIn.model_validate({**campaign_body(fields, channels, "aud_preview"),
                                   "name": "preview", "variants": [variant],
                                   "schedule": {"kind": "now"}})
    except ValidationError as exc:
        return JSONResponse({"problem": "; ".join(_errors_of(exc)[:3])})
    except (ValueError, KeyError, TypeError, StopIteration, AttributeError):
        return JSONResponse({"problem": "—"})
    if category not in EVENT_TYPES:
        return JSONResponse({"problem": "category"})
    return JSONResponse({"previews": await run_in_threadpool(_previews, request, category,
                                                             channels, variant)})


@router.get("/static/campaigns.js")
def script() -> Response:
    """The live audience count and variant preview (the form works without them)."""
    return Response((HERE / "campaigns.js").read_text("utf-8"),
                    media_type="text/javascript; charset=utf-8",
                    headers={"Cache-Control": "no-cache"})
