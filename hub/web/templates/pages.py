"""`/ui/templates`: server-rendered template preview for marketers, behind an API-key login.

Login: the marketer pastes an API key holding `templates:read`; it is verified, then kept in
an HttpOnly, SameSite=Strict cookie scoped to /ui, signed and time-limited (8 h) with the
hub's secret key. Every request re-verifies the key, so revoking it ends the session.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from jinja2 import Environment, FileSystemLoader, select_autoescape

from hub.events import event_types
from hub.keys import Principal, Scope
from templates import CHANNELS, DIGEST, LOCALES, TONES, Coverage, Renderer
from templates.preview import coverage_matrix, preview, sample_payload
from templates.samples import BUSINESS_PROFILE, PROFILES
from templates.sms import GSM7_BASIC, GSM7_EXTENSION

HERE = Path(__file__).parent
COOKIE = "hub_ui_templates"
SESSION_SECONDS = 8 * 3600
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' https: data:; frame-src 'self'; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")
PAGES = Environment(loader=FileSystemLoader(HERE), autoescape=select_autoescape(["html"]),
                    trim_blocks=True, lstrip_blocks=True)

router = APIRouter(prefix="/ui", include_in_schema=False)


def _signer(request: Request) -> URLSafeTimedSerializer:
    secret = request.app.state.runtime.settings.secret_key.get_secret_value()
    return URLSafeTimedSerializer(secret, salt="hub.ui.templates")


def _principal(request: Request) -> Principal | None:
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        token = _signer(request).loads(raw, max_age=SESSION_SECONDS)
    except BadSignature:
        return None
    principal: Principal | None = request.app.state.runtime.verifier.verify(str(token))
    return principal if principal and principal.allows(Scope.TEMPLATES_READ) else None


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status, headers={"Content-Security-Policy": CSP,
                                               "Cache-Control": "no-store",
                                               "X-Content-Type-Options": "nosniff"})


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, error: str | None = None) -> HTMLResponse:
    """The login form (an API key with templates:read)."""
    return _html(PAGES.get_template("login.html").render(error=error))


@router.post("/login")
def login(request: Request, api_key: str = Form(..., max_length=200)) -> Response:
    """Verifies the key and starts a session cookie."""
    principal = request.app.state.runtime.verifier.verify(api_key.strip())
    if principal is None or not principal.allows(Scope.TEMPLATES_READ):
        page = PAGES.get_template("login.html").render(
            error="Klucz jest nieznany albo nie ma uprawnienia templates:read.")
        return _html(page, 401)
    reply = RedirectResponse("/ui/templates", status_code=303)
    reply.set_cookie(COOKIE, _signer(request).dumps(api_key.strip()), max_age=SESSION_SECONDS,
                     path="/ui", httponly=True, samesite="strict",
                     secure=request.url.scheme == "https")
    return reply


@router.post("/logout")
def logout() -> Response:
    """Ends the session."""
    reply = RedirectResponse("/ui/login", status_code=303)
    reply.delete_cookie(COOKIE, path="/ui")
    return reply


@router.get("/templates/static/templates.js")
def script() -> Response:
    """The page's small progressive script (live SMS counter, auto-refresh)."""
    return Response((HERE / "templates.js").read_text("utf-8"),
                    media_type="text/javascript; charset=utf-8",
                    headers={"Cache-Control": "no-cache"})


def _choice(value: str | None, allowed: tuple[str, ...] | list[str], default: str) -> str:
    return value if value in allowed else default


def _sample_json(event_type: str, locale: str) -> str:
    payload = sample_payload(event_type, locale)
    return json.dumps({"parcel": payload.get("parcel"), "data": payload.get("data", {})},
                      ensure_ascii=False, indent=2)


def _matrix(renderer: Renderer, types: list[str]) -> dict[str, Any]:
    cells = coverage_matrix(renderer, types)
    rows: dict[str, dict[str, dict[str, str]]] = {}
    for c in cells:
        rows.setdefault(c.event_type, {}).setdefault(f"{c.locale}.{c.tone}", {})[c.channel] = (
            c.status.value)
    counts = {s.value: sum(c.status is s for c in cells) for s in Coverage}
    return {"rows": rows, "counts": counts}


@router.get("/templates", response_class=HTMLResponse)
def page(request: Request, event_type: str | None = None, channel: str | None = None,
         locale: str | None = None, tone: str | None = None, segment: str | None = None,
         sample: str | None = None) -> Response:
    """The preview page: form, rendered message, warnings and the coverage matrix."""
    who = _principal(request)
    if who is None:
        return RedirectResponse("/ui/login", status_code=303)
    types = sorted(event_types())
    event_type = _choice(event_type, [*types, DIGEST], "parcel.ready_for_pickup")
    channel = _choice(channel, CHANNELS, "sms")
    locale = _choice(locale, LOCALES, "pl")
    tone = _choice(tone, TONES, "formal")
    segment = _choice(segment, ("individual", "business"), "individual")
    renderer: Renderer = request.app.state.runtime.pipeline.stages.renderer
    sample_error, payload = None, None
    if sample and sample.strip():
        try:
            given = json.loads(sample)
            payload = sample_payload(event_type, locale, given.get("parcel"), given.get("data"))
        except (ValueError, AttributeError) as exc:
            sample_error = f"Niepoprawny JSON: {exc}"
    profile = dict(BUSINESS_PROFILE if segment == "business" else PROFILES[locale])
    result = preview(renderer, event_type, channel, locale, tone, payload=payload,
                     profile=profile)
    body = PAGES.get_template("page.html").render(
        who=who, types=[*types, DIGEST], channels=CHANNELS, locales=LOCALES, tones=TONES,
        event_type=event_type, channel=channel, locale=locale, tone=tone, segment=segment,
        sample=sample if sample and sample.strip() else _sample_json(event_type, locale),
        sample_error=sample_error, result=result, message=result.message,
        matrix=_matrix(renderer, types),
        gsm_basic=json.dumps("".join(sorted(GSM7_BASIC)), ensure_ascii=False),
        gsm_ext=json.dumps("".join(sorted(GSM7_EXTENSION)), ensure_ascii=False),
    )
    return _html(body)
