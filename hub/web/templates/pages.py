"""`/ui/templates`: server-rendered template preview for marketers, behind an API-key login.

Login: the marketer pastes an API key holding `templates:read` (admin keys are refused: they
stay in automation). The key is checked once and never leaves the login request: the
browser gets a random session token (hub.web.templates.sessions) in an HttpOnly,
SameSite=Lax cookie scoped to /ui, Secure by configuration (HUB_COOKIE_SECURE), valid
HUB_UI_SESSION_HOURS. Logout and key revocation end the session server-side. State-changing
forms (login, logout) are checked against the Origin header, logout also by an HMAC token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from hub.events import event_types
from hub.keys import Principal, Scope
from hub.web.templates import sessions
from hub.web.templates.sessions import COOKIE, LEGACY_COOKIE, PageUser
from templates import CHANNELS, DIGEST, LOCALES, TONES, Coverage, Renderer
from templates.preview import coverage_matrix, preview, sample_payload
from templates.samples import BUSINESS_PROFILE, PROFILES
from templates.sms import GSM7_BASIC, GSM7_EXTENSION

HERE = Path(__file__).parent
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' https: data:; frame-src 'self'; form-action 'self'; base-uri 'none'; "
       "frame-ancestors 'none'")
PAGES = Environment(loader=FileSystemLoader(HERE), autoescape=select_autoescape(["html"]),
                    trim_blocks=True, lstrip_blocks=True)
LOGIN_ERRORS = {
    "unknown": "Klucz jest nieznany, unieważniony albo nie ma uprawnienia templates:read.",
    "admin": "Klucz z uprawnieniem admin nie loguje się do stron. Użyj klucza, który ma "
             "tylko templates:read (hub keys create --scope templates:read).",
    "origin": "Formularz wysłano z innej strony. Otwórz stronę logowania i spróbuj ponownie.",
}

router = APIRouter(prefix="/ui", include_in_schema=False)


def _runtime(request: Request) -> Any:
    return request.app.state.runtime


def _user(request: Request) -> PageUser | None:
    return sessions.resolve(_runtime(request).db, request.cookies.get(COOKIE))


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status, headers={"Content-Security-Policy": CSP,
                                               "Cache-Control": "no-store",
                                               "X-Content-Type-Options": "nosniff",
                                               "Referrer-Policy": "same-origin"})


def html_with_fetch(body: str, status: int = 200) -> HTMLResponse:
    """A page whose script fetches from this origin (live previews, live counts)."""
    reply = _html(body, status)
    reply.headers["Content-Security-Policy"] = f"{CSP}; connect-src 'self'"
    return reply


def _same_origin(request: Request) -> bool:
    """False when a browser says the form came from another site (Origin header)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser form post (curl, tests); SameSite=Lax still applies
    return urlsplit(origin).netloc == request.headers.get("host", "")


def _login_page(error: str | None = None, status: int = 200) -> HTMLResponse:
    return _html(PAGES.get_template("login.html").render(error=LOGIN_ERRORS.get(error or "")),
                 status)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    """The login form (an API key with templates:read, not admin)."""
    return _login_page()


def _check_key(request: Request, api_key: str) -> tuple[Principal | None, str | None]:
    principal: Principal | None = _runtime(request).verifier.verify(api_key.strip())
    if principal is None or not principal.allows(Scope.TEMPLATES_READ):
        return None, "unknown"
    if Scope.ADMIN in principal.scopes:
        return None, "admin"
    return principal, None


@router.post("/login")
async def login(request: Request, api_key: str = Form(..., max_length=200)) -> Response:
    """Checks the key and starts a server-side session; the cookie carries only its id."""
    if not _same_origin(request):
        return _login_page("origin", 403)
    principal, error = await run_in_threadpool(_check_key, request, api_key)
    if principal is None:
        return _login_page(error, 401 if error == "unknown" else 403)
    runtime = _runtime(request)
    token = await run_in_threadpool(sessions.start, runtime.db, runtime.settings,
                                    principal.key_id)
    secure = runtime.settings.cookie_secure
    reply = RedirectResponse("/ui/templates", status_code=303)
    reply.set_cookie(COOKIE, token, max_age=int(runtime.settings.ui_session_hours * 3600),
                     path="/ui", httponly=True, samesite="lax",
                     secure=request.url.scheme == "https" if secure is None else secure)
    reply.delete_cookie(LEGACY_COOKIE, path="/ui")
    return reply


@router.post("/logout")
async def logout(request: Request, csrf: str = Form("", max_length=200)) -> Response:
    """Ends the session server-side and clears the cookie."""
    token = request.cookies.get(COOKIE)
    runtime = _runtime(request)
    if not _same_origin(request) or not sessions.csrf_ok(runtime.settings, token, csrf):
        return _html("<!DOCTYPE html><title>403</title><p>Niepoprawne żądanie wylogowania. "
                     '<a href="/ui/templates">Wróć</a></p>', 403)
    await run_in_threadpool(sessions.end, runtime.db, token)
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
    who = _user(request)
    if who is None:
        return RedirectResponse("/ui/login", status_code=303,
                                headers={"Cache-Control": "no-store"})
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
    csrf = sessions.csrf_token(_runtime(request).settings, str(request.cookies.get(COOKIE)))
    body = PAGES.get_template("page.html").render(
        who=who, csrf=csrf, types=[*types, DIGEST], channels=CHANNELS, locales=LOCALES, tones=TONES,
        event_type=event_type, channel=channel, locale=locale, tone=tone, segment=segment,
        sample=sample if sample and sample.strip() else _sample_json(event_type, locale),
        sample_error=sample_error, result=result, message=result.message,
        matrix=_matrix(renderer, types),
        gsm_basic=json.dumps("".join(sorted(GSM7_BASIC)), ensure_ascii=False),
        gsm_ext=json.dumps("".join(sorted(GSM7_EXTENSION)), ensure_ascii=False),
    )
    return _html(body)
