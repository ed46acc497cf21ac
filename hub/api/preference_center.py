"""The customer's own pages, reached by signed links and working without JavaScript:
the preference center (`/p/<token>`) and one-click unsubscribe (`/u/<token>`, RFC 8058)."""

from __future__ import annotations

import tomllib
from datetime import time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from hub.consents import Revert, set_consent, spend_undo_token, undo_unsubscribe, unsubscribe
from hub.customers import consent_entries, get_customer
from hub.links import (
    preference_link,
    read_preference_token,
    read_undo_token,
    read_unsubscribe_token,
    undo_token,
)
from hub.logs import get_logger
from hub.models import Customer
from preferences import (
    CATEGORIES,
    CHANNELS,
    COPY_CHANNELS,
    SUPPORTED_LOCALES,
    ConsentAction,
    ConsentSource,
    Frequency,
    Preferences,
    QuietHours,
    derive_state,
    preferences_from_json,
    preferences_to_json,
)
from preferences.model import CONSENT_CATEGORIES

CONSENT_TEXT_VERSION = "pc-2026-11"
_PAGES = Path(__file__).resolve().parents[1] / "web" / "preferences"
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the token is in the URL
    "X-Robots-Tag": "noindex",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'",
}
router = APIRouter(tags=["preference center"], include_in_schema=False)
log = get_logger("preference_center")
Form = dict[str, list[str]]


@lru_cache(maxsize=1)
def _env() -> Environment:
    return Environment(loader=FileSystemLoader(_PAGES), autoescape=select_autoescape(["html"]))


@lru_cache(maxsize=1)
def texts() -> dict[str, dict[str, str]]:
    """The page texts per language."""
    with (_PAGES / "messages.toml").open("rb") as fh:
        return tomllib.load(fh)


def _page(template: str, lang: str, status: int = 200, **context: Any) -> HTMLResponse:
    languages = [(code, texts()[code]["language_name"]) for code in SUPPORTED_LOCALES]
    html = _env().get_template(template).render(lang=lang, t=texts()[lang], languages=languages,
                                                **context)
    return HTMLResponse(html, status_code=status, headers=_HEADERS)


def _lang(request: Request, customer: Customer | None) -> str:
    wanted = request.query_params.get("lang")
    if wanted in SUPPORTED_LOCALES:
        return str(wanted)
    if customer is not None and customer.locale in SUPPORTED_LOCALES:
        return customer.locale
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip()[:2].lower()
        if code in SUPPORTED_LOCALES:
            return code
    return "pl"


def _error(request: Request, status: int = 403) -> HTMLResponse:
    return _page("error.html", _lang(request, None), status=status)


async def _form(request: Request) -> Form:
    data = await request.form()
    return {key: [str(v) for v in data.getlist(key)] for key in data}


def _db(request: Request) -> Any:
    return request.app.state.runtime.db


# --- preference center ---------------------------------------------------------------


def center_context(session: Session, customer: Customer) -> dict[str, Any]:
    """What the form shows: channels per category (consent state for consent categories)."""
    prefs = preferences_from_json(customer.preferences)
    state = derive_state(consent_entries(session, customer.tenant, customer.external_id))
    checked = {}
    for category in CATEGORIES:
        order = prefs.order_for(category)
        checked[category] = [c for c in order if category not in CONSENT_CATEGORIES
                             or state.status(category, c) is ConsentAction.GRANTED]
    quiet = prefs.quiet_hours
    return {
        "categories": CATEGORIES, "channels": CHANNELS, "checked": checked,
        # the inbox copies whatever is sent, so it is never the preferred channel
        "preferable": [c for c in CHANNELS if c not in COPY_CHANNELS],
        "preferred": {c: (prefs.order_for(c) or CHANNELS)[0] for c in CATEGORIES},
        "frequencies": [str(f) for f in Frequency], "frequency": str(prefs.frequency),
        "quiet_start": quiet.start.strftime("%H:%M") if quiet else "",
        "quiet_end": quiet.end.strftime("%H:%M") if quiet else "",
        "locale": customer.locale, "tone": customer.tone,
    }


def _first(form: Form, key: str) -> str:
    values = form.get(key) or [""]
    return values[0]


def _ordered(channels: list[str], preferred: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys([preferred, *channels] if preferred in channels else channels))


def _quiet(form: Form) -> QuietHours | None:
    try:
        start, end = time.fromisoformat(_first(form, "quiet_start")), time.fromisoformat(
            _first(form, "quiet_end"))
    except ValueError:
        return None
    return None if start == end else QuietHours(start, end)


def save_center(session: Session, customer: Customer, form: Form) -> None:
    """Applies a submitted form; consent changes go to the ledger (`preference_center`)."""
    state = derive_state(consent_entries(session, customer.tenant, customer.external_id))
    channels: dict[str, tuple[str, ...]] = {}
    for category in CATEGORIES:
        picked = [c for c in CHANNELS if c in form.get(category, [])]
        preferred = _first(form, f"preferred_{category}")
        if category not in CONSENT_CATEGORIES:
            channels[category] = _ordered(picked, preferred)
            continue
        channels[category] = _ordered(list(CHANNELS), preferred)
        for channel in CHANNELS:
            granted = state.status(category, channel) is ConsentAction.GRANTED
            if (channel in picked) != granted:
                set_consent(session, customer.external_id, category, channel, not granted,
                            ConsentSource.PREFERENCE_CENTER, CONSENT_TEXT_VERSION,
                            tenant=customer.tenant)
    frequency = _first(form, "frequency")
    prefs = Preferences(
        channels=channels,
        event_opt_outs=preferences_from_json(customer.preferences).event_opt_outs,
        quiet_hours=_quiet(form),
        frequency=Frequency(frequency) if frequency in set(Frequency) else Frequency.ALL,
    )
    # Keys besides the customer's own choices (operator `throttling` overrides) stay.
    customer.preferences = {**(customer.preferences or {}), **preferences_to_json(prefs)}
    if _first(form, "locale") in SUPPORTED_LOCALES:
        customer.locale = _first(form, "locale")
    if _first(form, "tone") in ("formal", "informal"):
        customer.tone = _first(form, "tone")


@router.get("/p/{token}", response_class=HTMLResponse)
def preference_center(token: str, request: Request) -> HTMLResponse:
    """The preference center for the customer the signed token names."""
    scope = read_preference_token(request.app.state.runtime.settings, token)
    if scope is None:
        return _error(request)
    with _db(request).sessions() as session:
        customer = get_customer(session, scope.tenant, scope.customer_id)
        if customer is None:
            return _error(request, 410)
        lang = _lang(request, customer)
        context = center_context(session, customer)
        if request.query_params.get("lang") in SUPPORTED_LOCALES:
            context["locale"] = lang  # the customer switched language: offer it for messages
        return _page("center.html", lang, action=f"/p/{token}",
                     saved=request.query_params.get("saved") == "1", **context)


@router.post("/p/{token}", response_model=None)
async def save_preference_center(token: str, request: Request) -> Response:
    """Saves the form and redirects back to the page (post/redirect/get)."""
    scope = read_preference_token(request.app.state.runtime.settings, token)
    if scope is None:
        return _error(request)
    form = await _form(request)

    def save() -> str | None:
        with _db(request).transaction() as session:
            customer = get_customer(session, scope.tenant, scope.customer_id)
            if customer is None:
                return None
            save_center(session, customer, form)
            return customer.locale

    locale = await run_in_threadpool(save)
    if locale is None:
        return _error(request, 410)
    log.info("preferences_saved", source="preference_center")
    return RedirectResponse(f"/p/{token}?saved=1&lang={locale}", status_code=303,
                            headers=_HEADERS)


# --- one-click unsubscribe (RFC 8058) ---------------------------------------------------


def _unsubscribe_page(request: Request, token: str, state: str, undo: str | None = None
                      ) -> HTMLResponse:
    settings = request.app.state.runtime.settings
    scope = read_unsubscribe_token(settings, token)
    assert scope is not None
    with _db(request).sessions() as session:
        customer = get_customer(session, scope.tenant, scope.customer_id)
    lang = _lang(request, customer)
    t = texts()[lang]
    return _page("unsubscribe.html", lang, state=state, action=f"/u/{token}", undo=undo,
                 category=t.get(f"cat_{scope.category}", scope.category),
                 channel=t.get(f"channel_{scope.channel}", scope.channel),
                 preferences_url=preference_link(settings, scope.customer_id, scope.tenant)
                 if customer else None)


@router.get("/u/{token}", response_class=HTMLResponse)
def unsubscribe_page(token: str, request: Request) -> HTMLResponse:
    """Asks for confirmation (a GET never unsubscribes: mail scanners follow links)."""
    if read_unsubscribe_token(request.app.state.runtime.settings, token) is None:
        return _error(request)
    return _unsubscribe_page(request, token, "confirm")


@router.post("/u/{token}", response_model=None)
async def unsubscribe_post(token: str, request: Request) -> Response:
    """`List-Unsubscribe=One-Click` from a mail client, or the confirmation form: withdraws
    the category on the channel at once, with no further interaction. The confirmation page
    offers a one-time undo of exactly this withdrawal (a short-lived token)."""
    settings = request.app.state.runtime.settings
    scope = read_unsubscribe_token(settings, token)
    if scope is None:
        return _error(request)
    form = await _form(request)

    def withdraw() -> Revert | None:
        with _db(request).transaction() as session:
            if get_customer(session, scope.tenant, scope.customer_id) is None:
                return None
            return unsubscribe(session, scope.customer_id, scope.category, scope.channel,
                               tenant=scope.tenant)

    revert = await run_in_threadpool(withdraw)
    log.info("unsubscribed", category=scope.category, channel=scope.channel)
    if _first(form, "List-Unsubscribe") == "One-Click":
        return PlainTextResponse("unsubscribed\n", headers=_HEADERS)
    undo = undo_token(settings, token, revert.kind, revert.ref) if revert else None
    return _unsubscribe_page(request, token, "done", undo)


@router.post("/u/{token}/undo", response_model=None)
async def unsubscribe_undo(token: str, request: Request) -> Response:
    """Reverts the one withdrawal the form's `undo` token was issued for, once and only
    within its lifetime; the year-long unsubscribe token alone restores nothing."""
    settings = request.app.state.runtime.settings
    scope = read_unsubscribe_token(settings, token)
    if scope is None:
        return _error(request)
    grant = read_undo_token(settings, _first(await _form(request), "undo"), token)
    lifetime = timedelta(minutes=settings.unsubscribe_undo_minutes)

    def restore() -> bool:
        with _db(request).transaction() as session:
            if grant is None or get_customer(session, scope.tenant, scope.customer_id) is None:
                return False
            if not spend_undo_token(session, grant.token_id, lifetime):
                return False
            return undo_unsubscribe(session, scope.customer_id, scope.category,
                                    scope.channel, Revert(grant.kind, grant.ref),
                                    tenant=scope.tenant)

    restored = await run_in_threadpool(restore)
    log.info("unsubscribe_undo", category=scope.category, channel=scope.channel,
             restored=restored)
    return _unsubscribe_page(request, token, "undone" if restored else "undo_unavailable")
