"""Tracked links and conversions over HTTP: the `/c/<token>` redirect of campaign and loyalty
messages and `POST /v1/conversions`."""

from __future__ import annotations

import tomllib
from datetime import timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from hub import clicks, conversions
from hub.api.auth import require
from hub.api.problems import Problem
from hub.customers import get_customer
from hub.db import retry_on_conflict, utcnow
from hub.keys import Principal, Scope
from hub.receipts import apply_status, find_notification
from preferences import SUPPORTED_LOCALES
from preferences.consent import MAX_FUTURE_SKEW

router = APIRouter(tags=["clicks"])
Writer = Annotated[Principal, Depends(require(Scope.CONVERSIONS_WRITE))]
_WEB = Path(__file__).resolve().parents[1] / "web"
_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
            "X-Robots-Tag": "noindex"}
MAX_AGE = timedelta(days=366)  # a conversion older than this is refused


@lru_cache(maxsize=1)
def _env() -> Environment:
    return Environment(loader=FileSystemLoader(_WEB / "preferences"),  # base + error page
                       autoescape=select_autoescape(["html"]))


@lru_cache(maxsize=1)
def _texts() -> dict[str, dict[str, str]]:
    with (_WEB / "clicks" / "messages.toml").open("rb") as fh:
        return tomllib.load(fh)


def _lang(request: Request) -> str:
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip()[:2].lower()
        if code in SUPPORTED_LOCALES:
            return code
    return "pl"


def _not_found(request: Request) -> HTMLResponse:
    lang = _lang(request)
    page = _env().get_template("error.html").render(lang=lang, t=_texts()[lang])
    return HTMLResponse(page, status_code=404, headers=_HEADERS)


@router.api_route("/c/{token}", methods=["GET", "HEAD"], include_in_schema=False)
async def follow_link(token: str, request: Request) -> Response:
    """Redirects (302) to the URL stored for the link and counts the click: not for HEAD
    requests, link previews and mail scanners, nor again within a few minutes. A token
    whose MAC does not verify costs no lookup; unknown or forged tokens get a 404 page."""
    runtime = request.app.state.runtime
    link = clicks.read_token(runtime.settings.secret_key.get_secret_value(), token)
    if link is None:
        return _not_found(request)
    counted = not clicks.is_bot(request.method, request.headers.get("user-agent"))

    def follow() -> clicks.Followed | None:
        with runtime.db.transaction() as session:
            return clicks.follow(session, link, counted=counted)

    followed = await run_in_threadpool(follow)
    if followed is None:
        return _not_found(request)
    return RedirectResponse(followed.url, status_code=302, headers=_HEADERS)


@router.api_route("/o/{token}.gif", methods=["GET", "HEAD"], include_in_schema=False)
async def open_pixel(token: str, request: Request) -> Response:
    """The optional e-mail open pixel: the first fetch sets the message's `opened_at`.
    Always the same image, so a forged token learns nothing."""
    runtime = request.app.state.runtime
    key = clicks.read_pixel_token(runtime.settings.secret_key.get_secret_value(), token)

    def record() -> None:
        with runtime.db.transaction() as session:
            row = find_notification(session, key, None)
            if row is not None:
                apply_status(row, "opened", source="open_pixel", receipt_id="open_pixel")

    if key is not None and request.method == "GET":  # image proxies (Gmail) fetch for people
        await run_in_threadpool(record)
    return Response(clicks.PIXEL_GIF, media_type="image/gif", headers=_HEADERS)


def _recent(at: AwareDatetime) -> AwareDatetime:
    now = utcnow()
    if at > now + MAX_FUTURE_SKEW:
        raise ValueError("occurred_at lies in the future (more than 5 minutes ahead)")
    if at < now - MAX_AGE:
        raise ValueError("occurred_at lies more than a year back")
    return at


class ConversionBody(BaseModel):
    """A conversion: whose, how much, when, and the producer's id of it (idempotency)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    external_id: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\w.:@/+-]+$")]
    customer_id: Annotated[str, Field(min_length=1, max_length=128)]
    value: Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=2, allow_inf_nan=False)]
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    occurred_at: Annotated[AwareDatetime, AfterValidator(_recent)]
    campaign_id: Annotated[int, Field(gt=0, lt=2**31)] | None = None


def _conversion_json(row: Any) -> dict[str, Any]:
    return {"external_id": row.external_id, "value": f"{row.value:.2f}",
            "currency": row.currency, "occurred_at": row.occurred_at.isoformat(),
            "recorded_at": row.recorded_at.isoformat(),
            "attribution": {"campaign_id": row.campaign_id, "variant": row.variant,
                            "click_id": row.click_id}}


@router.post("/v1/conversions", status_code=201, tags=["conversions"],
             responses={200: {"description": "The same conversion was posted before"},
                        404: {"description": "No such customer in the key's tenant"},
                        409: {"description": "The external id holds another conversion"}})
@retry_on_conflict  # two posts of one new conversion at once: the loser reports a repeat
def post_conversion(body: ConversionBody, request: Request, response: Response,
                    who: Writer) -> dict[str, Any]:
    """Records a conversion and attributes it to the customer's last click within
    `HUB_CONVERSION_WINDOW_DAYS` before it (same body again: 200 with the stored result)."""
    runtime = request.app.state.runtime
    window = timedelta(days=runtime.settings.conversion_window_days)
    with runtime.db.transaction() as session:
        customer = get_customer(session, who.tenant, body.customer_id)
        if customer is None:
            raise Problem(404, "not-found", f"No customer {body.customer_id!r}.")
        try:
            row, new = conversions.record(session, who.tenant, conversions.ConversionIn(
                body.external_id, body.customer_id, customer.id, body.value, body.currency,
                body.occurred_at, body.campaign_id), window)
        except conversions.ConversionConflict as exc:
            raise Problem(409, "conflict", f"Conversion {body.external_id!r} was recorded "
                          "with other content; use a new external_id.") from exc
        if not new:
            response.status_code = 200
        return _conversion_json(row)
