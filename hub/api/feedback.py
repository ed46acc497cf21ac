"""Delivery feedback over HTTP: the customer's rating page (`/f/<token>`, server-rendered,
no JavaScript, in the customer's language) and the statistics (`GET /v1/feedback`)."""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from hub.api.auth import require
from hub.api.problems import Problem
from hub.feedback import (
    COMMENT_MAX,
    SCORES,
    FeedbackState,
    Visit,
    add_comment,
    comment_form_token,
    make_token,
    parse_token,
    record_once,
    verify,
)
from hub.feedback_stats import aggregate
from hub.keys import Principal, Scope
from hub.logs import get_logger
from preferences import SUPPORTED_LOCALES

_WEB = Path(__file__).resolve().parents[1] / "web"
_HEADERS = {
    "Cache-Control": "no-store",
    # The token is in the URL: never sent to other sites; same-origin keeps the Origin
    # header of the comment form's POST (no-referrer would turn it into "null").
    "Referrer-Policy": "same-origin",
    "X-Robots-Tag": "noindex",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'",
}
_STATUS = {FeedbackState.INVALID: 403, FeedbackState.EXPIRED: 410}
router = APIRouter(tags=["feedback"])
log = get_logger("feedback_page")
Reader = Annotated[Principal, Depends(require(Scope.FEEDBACK_READ))]


@lru_cache(maxsize=1)
def _env() -> Environment:
    loader = FileSystemLoader([_WEB / "feedback", _WEB / "preferences"])  # shares base.html
    return Environment(loader=loader, autoescape=select_autoescape(["html"]))


@lru_cache(maxsize=1)
def texts() -> dict[str, dict[str, str]]:
    """The page texts per language."""
    with (_WEB / "feedback" / "messages.toml").open("rb") as fh:
        return tomllib.load(fh)


def _lang(request: Request, locale: str | None) -> str:
    """?lang=, else the language the request was sent in, else the browser's, else pl."""
    for wanted in (request.query_params.get("lang"), locale):
        if wanted in SUPPORTED_LOCALES:
            return str(wanted)
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip()[:2].lower()
        if code in SUPPORTED_LOCALES:
            return code
    return "pl"


def _page(request: Request, token: str, result: Visit, **extra: Any) -> HTMLResponse:
    lang = _lang(request, result.locale)
    t = texts()[lang]
    html = _env().get_template("feedback.html").render(
        lang=lang, t=t, state=str(result.state), score=result.score, token=token,
        can_comment=result.can_comment, comment_max=COMMENT_MAX, **extra)
    return HTMLResponse(html, status_code=_STATUS.get(result.state, 200), headers=_HEADERS)


def _choices(request: Request, token: str) -> list[tuple[int, str]]:
    """The 0-10 links of the short link's page: one signed token per score."""
    settings = request.app.state.runtime.settings
    with request.app.state.runtime.db.sessions() as session:
        found = verify(session, settings, token)
        if found is None:
            return []
        scope, event = found
        tokens = [make_token(settings, event.tenant, event.customer_id, event.id,
                             scope.channel, s) for s in SCORES]
        return [(s, f"/f/{t}") for s, t in zip(SCORES, tokens, strict=True)]


@router.get("/f/{token}", response_class=HTMLResponse, include_in_schema=False)
async def feedback_link(token: str, request: Request) -> HTMLResponse:
    """One tap: records the score once and offers a comment; the short link (SMS, push)
    shows the 0-10 buttons. A forged or altered token gets a 403 page, nothing written."""
    runtime = request.app.state.runtime
    if parse_token(token) is None:
        return _page(request, token, Visit(FeedbackState.INVALID))
    result = await run_in_threadpool(record_once, runtime.db, runtime.settings, token)
    choices = (await run_in_threadpool(_choices, request, token)
               if result.state is FeedbackState.CHOOSE else [])
    form = comment_form_token(runtime.settings, token) if result.can_comment else ""
    return _page(request, token, result, choices=choices, form_token=form)


def _same_origin(request: Request) -> bool:
    """A form post from another site that names itself is refused. The form field bound to
    the token is the CSRF defence; this is a second fence (absent or privacy-hidden "null"
    origins pass)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    base = urlsplit(request.app.state.runtime.settings.public_base_url)
    own = {f"{base.scheme}://{base.netloc}", f"{request.url.scheme}://{request.url.netloc}"}
    return origin.rstrip("/") in own


@router.post("/f/{token}/comment", response_class=HTMLResponse, include_in_schema=False)
async def feedback_comment(token: str, request: Request) -> HTMLResponse:
    """Stores the optional comment of an answered request (once; bound to the same token
    and to the page's form field, and refused from another site)."""
    runtime = request.app.state.runtime
    form = await request.form()
    text, form_token = str(form.get("comment") or ""), str(form.get("form") or "")
    if parse_token(token) is None or not _same_origin(request):
        return _page(request, token, Visit(FeedbackState.INVALID))
    result = await run_in_threadpool(add_comment, runtime.db, runtime.settings, token,
                                     form_token, text[:COMMENT_MAX * 2])
    if result.state is FeedbackState.RECORDED:
        log.info("feedback_commented")
    return _page(request, token, result, commented=True)


def _day(value: date | None) -> datetime | None:
    return None if value is None else datetime.combine(value, time(), tzinfo=UTC)


@router.get("/v1/feedback")
def feedback_statistics(
    request: Request, principal: Reader,
    date_from: Annotated[date | None, Query(alias="from", description="First day (UTC)")] = None,
    date_to: Annotated[date | None, Query(alias="to", description="Last day, inclusive")] = None,
) -> dict[str, Any]:
    """NPS (promoters 9-10, detractors 0-6) and average score, with counts: overall and per
    pickup point, carrier and ISO week, for the key's tenant, answers recorded in the range."""
    if date_from and date_to and date_from > date_to:
        raise Problem(422, "validation", "from: must not be after to.")
    since = _day(date_from)
    until = _day(date_to + timedelta(days=1) if date_to else None)
    with request.app.state.runtime.db.sessions() as session:
        stats = aggregate(session, principal.tenant, since, until)
    return {"tenant": principal.tenant, "from": date_from.isoformat() if date_from else None,
            "to": date_to.isoformat() if date_to else None, **stats}
