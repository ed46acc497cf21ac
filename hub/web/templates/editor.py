"""`/ui/templates/editor`: edit a template's source, preview it live per channel × tone,
save drafts, publish, roll back, see who changed what (issue 13 item 6).

Same login, session and CSRF rules as the preview page (hub.web.templates.pages): forms
carry the session's HMAC token and are checked against the Origin header; the live preview
sends the token in a header. Buttons follow the key's scopes (`templates:write` saves,
`templates:publish` publishes). Text in Polish and English (`?lang=en`).
"""

from __future__ import annotations

import difflib
import json
import tomllib
from functools import partial
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from hub import template_editing as editing
from hub import template_versions as store
from hub.api.templates import renderer_of, to_out
from hub.events import event_types
from hub.keys import Scope
from hub.models import TemplateVersion
from hub.template_versions import TemplateRef
from hub.web.templates import sessions
from hub.web.templates.pages import HERE, PAGES, _same_origin, _user
from hub.web.templates.pages import html_with_fetch as _html
from hub.web.templates.sessions import COOKIE, PageUser
from templates import DIGEST, LOCALES
from templates.catalog import CATALOG_DIR
from templates.drafts import MAX_SOURCE_BYTES

router = APIRouter(prefix="/ui/templates", include_in_schema=False)
TEXT: dict[str, dict[str, str]] = tomllib.loads((HERE / "editor.toml").read_text("utf-8"))
LANGS = ("pl", "en")


def _lang(value: str | None) -> str:
    return value if value in LANGS else "pl"


def _runtime(request: Request) -> Any:
    return request.app.state.runtime


def _author(who: PageUser) -> str:
    return f"{who.producer} (page, key {who.key_id})"


def _catalog_source(ref: TemplateRef) -> str:
    path = CATALOG_DIR / ref.event_type / f"{ref.locale}.j2"
    return path.read_text("utf-8") if path.exists() else ""


def _diff(rows: list[TemplateVersion], number: int) -> list[tuple[str, str]]:
    """Lines of version `number` against the version before it (or the catalog file),
    each with its kind: add, del, hunk or same."""
    by_number = {r.number: r for r in rows}
    new = by_number.get(number)
    if new is None:
        return []
    old = by_number.get(number - 1)
    before = old.source if old is not None else ""
    lines = difflib.unified_diff(before.splitlines(), new.source.splitlines(),
                                 f"v{number - 1}" if old else "—", f"v{number}", lineterm="")
    kinds = {"+": "add", "-": "del", "@": "hunk"}
    return [(kinds.get(line[:1], "same"), line) for line in lines]


def _editor_url(template_id: str, lang: str, **extra: str | int) -> str:
    return "/ui/templates/editor?" + urlencode({"template": template_id, "lang": lang, **extra})


@router.get("/editor", response_class=HTMLResponse)
def editor(request: Request, template: str = "parcel.ready_for_pickup:pl",
           lang: str | None = None, version: int | None = None, diff: int | None = None,
           msg: str | None = None) -> Response:
    """The editor: source, preview, version history."""
    who = _user(request)
    if who is None:
        return RedirectResponse("/ui/login", status_code=303)
    ref = store.parse_template_id(who.tenant, template) or store.parse_template_id(
        who.tenant, "parcel.ready_for_pickup:pl")
    assert ref is not None
    return _page(request, who, ref, _lang(lang), version=version, diff=diff,
                 message=TEXT[_lang(lang)].get(f"msg_{msg}") if msg else None)


def _page(request: Request, who: PageUser, ref: TemplateRef, lang: str, *,
          version: int | None = None, diff: int | None = None, source: str | None = None,
          message: str | None = None, error: str | None = None,
          confirm: dict[str, Any] | None = None, status: int = 200) -> HTMLResponse:
    with _runtime(request).db.sessions() as session:
        rows = store.versions(session, who.tenant, ref.template_id)
    live = next((r for r in rows if r.state == store.VersionState.PUBLISHED), None)
    shown = next((r for r in rows if r.number == version), None) if version else None
    if source is None:  # the chosen version, else the one in use, else a draft in progress
        latest_draft = rows[0] if rows and rows[0].state == store.VersionState.DRAFT else None
        base = shown or live or latest_draft
        source = base.source if base is not None else _catalog_source(ref)
    previews, problem = None, None
    try:
        checked = editing.preview_source(renderer_of(request), ref, source)
        previews = {f"{c}.{t}": to_out(ref.event_type, c, p).model_dump()
                    for (c, t), p in checked.previews.items()}
    except editing.DraftRejected as exc:
        problem = str(exc)
    token = str(request.cookies.get(COOKIE))
    body = PAGES.get_template("editor.html").render(
        t=TEXT[lang], lang=lang, who=who, ref=ref, rows=rows, live=live, source=source,
        previews=previews, problem=problem, message=message, error=error, confirm=confirm,
        diff=_diff(rows, diff) if diff else None, diff_number=diff, locales=LOCALES,
        types=[*sorted(event_types()), DIGEST],
        csrf=sessions.csrf_token(_runtime(request).settings, token),
        can_write=who.allows(Scope.TEMPLATES_WRITE),
        can_publish=who.allows(Scope.TEMPLATES_PUBLISH), max_bytes=MAX_SOURCE_BYTES,
        shown=shown)
    return _html(body, status)


def _checked_post(request: Request, csrf: str, scope: Scope
                  ) -> tuple[PageUser | None, Response | None]:
    """The user of a state-changing form, or the refusal to answer."""
    who = _user(request)
    if who is None:
        return None, RedirectResponse("/ui/login", status_code=303)
    if not _same_origin(request) or not sessions.csrf_ok(
            _runtime(request).settings, request.cookies.get(COOKIE), csrf):
        return None, _html("<!DOCTYPE html><title>403</title><p>CSRF</p>", 403)
    if not who.allows(scope):
        return None, _html(f"<!DOCTYPE html><title>403</title><p>{scope.value}</p>", 403)
    return who, None


def _ref_or_404(who: PageUser, template: str) -> TemplateRef | None:
    return store.parse_template_id(who.tenant, template)


@router.post("/editor/save")
async def save(request: Request, template: str = Form(..., max_length=80),
               source: str = Form(..., max_length=MAX_SOURCE_BYTES),
               note: str = Form("", max_length=500), lang: str = Form("pl", max_length=2),
               csrf: str = Form("", max_length=200)) -> Response:
    """Saves the source as a new draft version."""
    who, refused = _checked_post(request, csrf, Scope.TEMPLATES_WRITE)
    if who is None:
        return refused  # type: ignore[return-value]
    lang = _lang(lang)
    ref = _ref_or_404(who, template)
    if ref is None:
        return _html("<!DOCTYPE html><title>404</title>", 404)
    try:
        row = await run_in_threadpool(editing.save, _runtime(request).db,
                                      renderer_of(request), who.tenant, ref, source,
                                      _author(who), note or None)
    except (editing.DraftRejected, editing.ConcurrentChange) as exc:
        return await run_in_threadpool(partial(_page, request, who, ref, lang, source=source,
                                               error=str(exc), status=422))
    return RedirectResponse(_editor_url(ref.template_id, lang, version=row.number,
                                        msg="saved"), status_code=303)


@router.post("/editor/publish")
async def publish(request: Request, template: str = Form(..., max_length=80),
                  number: int = Form(..., ge=1, le=1_000_000),
                  action: str = Form("publish", max_length=16),
                  confirm: str = Form("", max_length=4), lang: str = Form("pl", max_length=2),
                  csrf: str = Form("", max_length=200)) -> Response:
    """Publishes a draft (`action=publish`), or an older version again (`rollback`)."""
    who, refused = _checked_post(request, csrf, Scope.TEMPLATES_PUBLISH)
    if who is None:
        return refused  # type: ignore[return-value]
    lang, ref = _lang(lang), _ref_or_404(who, template)
    if ref is None:
        return _html("<!DOCTYPE html><title>404</title>", 404)
    db, renderer, author = _runtime(request).db, renderer_of(request), _author(who)
    try:
        if action == "rollback":
            await run_in_threadpool(editing.rollback, db, who.tenant, ref, number, author)
        else:
            await run_in_threadpool(editing.publish, db, renderer, who.tenant, ref, number,
                                    author, confirm == "1")
    except editing.NeedsConfirmation as exc:
        pending = {"number": number, "warnings": [
            {"channel": c, "tone": t, "code": w.code, "message": w.message}
            for c, t, w in exc.warnings]}
        return await run_in_threadpool(partial(_page, request, who, ref, lang, version=number,
                                               confirm=pending, status=409))
    except (editing.PublishRefused, editing.VersionConflict, editing.ConcurrentChange,
            editing.DraftRejected, LookupError) as exc:
        return await run_in_threadpool(partial(_page, request, who, ref, lang, version=number,
                                               error=str(exc), status=409))
    return RedirectResponse(_editor_url(ref.template_id, lang, msg="published"),
                            status_code=303)


@router.post("/editor/unpublish")
async def unpublish(request: Request, template: str = Form(..., max_length=80),
                    lang: str = Form("pl", max_length=2),
                    csrf: str = Form("", max_length=200)) -> Response:
    """Returns the template to the catalog file."""
    who, refused = _checked_post(request, csrf, Scope.TEMPLATES_PUBLISH)
    if who is None:
        return refused  # type: ignore[return-value]
    lang, ref = _lang(lang), _ref_or_404(who, template)
    if ref is None:
        return _html("<!DOCTYPE html><title>404</title>", 404)
    await run_in_threadpool(editing.unpublish, _runtime(request).db, who.tenant, ref,
                            _author(who))
    return RedirectResponse(_editor_url(ref.template_id, lang, msg="unpublished"),
                            status_code=303)


@router.post("/editor/preview")
async def live_preview(request: Request) -> Response:
    """The live preview of the editor's script: JSON {template, source} in, the previews
    per channel × tone (or the problem) out. The CSRF token travels in X-CSRF."""
    who = _user(request)
    token = request.cookies.get(COOKIE)
    if who is None or not _same_origin(request) or not sessions.csrf_ok(
            _runtime(request).settings, token, request.headers.get("x-csrf", "")):
        return JSONResponse({"error": "forbidden"}, 403)
    try:
        body = json.loads(await request.body())
        template, source = str(body["template"]), str(body["source"])
    except (ValueError, KeyError, TypeError):
        return JSONResponse({"error": "bad request"}, 400)
    ref = _ref_or_404(who, template)
    if ref is None:
        return JSONResponse({"error": "not found"}, 404)
    try:
        checked = await run_in_threadpool(editing.preview_source, renderer_of(request), ref,
                                          source)
    except editing.DraftRejected as exc:
        return JSONResponse({"problem": str(exc)})
    return JSONResponse({"previews": {f"{c}.{t}": to_out(ref.event_type, c, p).model_dump()
                                      for (c, t), p in checked.previews.items()}})


@router.get("/static/editor.js")
def script() -> Response:
    """The editor's live preview (the page works without it: Preview re-renders)."""
    return Response((HERE / "editor.js").read_text("utf-8"),
                    media_type="text/javascript; charset=utf-8",
                    headers={"Cache-Control": "no-cache"})
