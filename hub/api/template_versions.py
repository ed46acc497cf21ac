"""Template drafts and versions (issue 13): save a draft (`templates:write`), preview it,
publish, roll back and return to the catalog file (`templates:publish`), list who changed
what (`templates:read`). A template id is `<event type>:<locale>`, e.g. `parcel.delivered:pl`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from hub import template_editing as editing
from hub import template_versions as store
from hub.api.auth import require
from hub.api.problems import Problem
from hub.api.templates import PreviewOut, renderer_of, to_out
from hub.keys import Principal, Scope
from hub.models import TemplateVersion
from hub.template_versions import TemplateRef
from templates.drafts import MAX_SOURCE_BYTES, covered_channels

api = APIRouter(prefix="/v1/templates", tags=["template versions"])
Reader = Annotated[Principal, Depends(require(Scope.TEMPLATES_READ))]
Writer = Annotated[Principal, Depends(require(Scope.TEMPLATES_WRITE))]
Publisher = Annotated[Principal, Depends(require(Scope.TEMPLATES_PUBLISH))]
TemplateId = Annotated[str, Path(max_length=80, description="`<event type>:<locale>`")]
Number = Annotated[int, Path(ge=1, le=1_000_000)]
Source = Annotated[str, Field(min_length=1, max_length=MAX_SOURCE_BYTES,
                              description="Jinja source: one block per message part.")]


class DraftIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: Source
    note: Annotated[str, Field(max_length=500)] | None = None


class SourceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: Source


class PublishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    confirm: bool = Field(default=False, description="Publish although the preview warns.")


class VersionOut(BaseModel):
    template_id: str
    number: int
    state: str
    author: str
    created_at: datetime
    note: str | None
    restored_from: int | None
    published_by: str | None
    published_at: datetime | None
    archived_by: str | None
    archived_at: datetime | None
    source: str


class VersionsOut(BaseModel):
    template_id: str
    published: int | None = Field(description="The version in use; null: the catalog file.")
    versions: list[VersionOut]


class CellPreviewOut(BaseModel):
    channel: str
    tone: str
    preview: PreviewOut


class DraftPreviewOut(BaseModel):
    template_id: str
    channels: list[str] = Field(description="Channels the draft covers by itself.")
    previews: list[CellPreviewOut]


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {}}}


CONFLICT: dict[int | str, dict[str, Any]] = {409: _problem(
    "confirmation required, the version's state forbids it, or a concurrent change (retry)")}


def author_of(who: Principal, via: str = "api") -> str:
    """Who changed a template, as the history shows it (no personal data: the key)."""
    return f"{who.producer} ({via}, key {who.key_id})"


def version_out(row: TemplateVersion) -> VersionOut:
    return VersionOut(template_id=row.template_id, number=row.number, state=row.state,
                      author=row.author, created_at=row.created_at, note=row.note,
                      restored_from=row.restored_from, published_by=row.published_by,
                      published_at=row.published_at, archived_by=row.archived_by,
                      archived_at=row.archived_at, source=row.source)


def template_ref(who: Principal, template_id: str) -> TemplateRef:
    ref = store.parse_template_id(who.tenant, template_id)
    if ref is None:
        raise Problem(404, "not-found", f"no template {template_id!r} (ids are "
                      "'<event type>:<locale>', e.g. 'parcel.delivered:pl')")
    return ref


def problem_of(exc: Exception) -> Problem:
    """The problem document for a refused edit."""
    if isinstance(exc, editing.DraftRejected):
        return Problem(422, "template-invalid", str(exc),
                       problems=[{"code": p.code, "message": p.message, "line": p.line}
                                 for p in exc.problems])
    if isinstance(exc, editing.NeedsConfirmation):
        return Problem(409, "confirmation-required", "The draft's preview warns; publish "
                       "again with {\"confirm\": true} to publish anyway.",
                       warnings=[{"channel": c, "tone": t, "code": w.code,
                                  "message": w.message} for c, t, w in exc.warnings])
    if isinstance(exc, editing.PublishRefused):
        return Problem(422, "publish-refused", str(exc))
    if isinstance(exc, editing.VersionConflict | editing.ConcurrentChange):
        return Problem(409, "version-conflict", str(exc))
    if isinstance(exc, LookupError):
        return Problem(404, "not-found", str(exc))
    raise exc


EDIT_ERRORS = (editing.DraftRejected, editing.NeedsConfirmation, editing.PublishRefused,
               editing.VersionConflict, editing.ConcurrentChange, LookupError)


def draft_preview_out(ref: TemplateRef, checked: editing.CheckedDraft) -> DraftPreviewOut:
    return DraftPreviewOut(
        template_id=ref.template_id,
        channels=list(covered_channels(set(checked.draft.template.blocks))),
        previews=[CellPreviewOut(channel=c, tone=t, preview=to_out(ref.event_type, c, p))
                  for (c, t), p in checked.previews.items()])


@api.get("/{template_id}/versions", response_model=VersionsOut)
def list_versions(template_id: TemplateId, request: Request, who: Reader) -> VersionsOut:
    """Every version of the template, newest first, with who saved, published and
    archived it and when."""
    ref = template_ref(who, template_id)
    with request.app.state.runtime.db.sessions() as session:
        rows = store.versions(session, who.tenant, ref.template_id)
    live = next((r.number for r in rows if r.state == store.VersionState.PUBLISHED), None)
    return VersionsOut(template_id=ref.template_id, published=live,
                       versions=[version_out(r) for r in rows])


@api.post("/{template_id}/drafts", response_model=VersionOut, status_code=201,
          responses=CONFLICT)
async def save_draft(template_id: TemplateId, body: DraftIn, request: Request,
                     who: Writer) -> VersionOut:
    """Saves the source as the next draft version (refused: syntax errors, anything the
    sandbox forbids, unknown blocks)."""
    ref = template_ref(who, template_id)
    runtime = request.app.state.runtime
    try:
        row = await run_in_threadpool(editing.save, runtime.db, renderer_of(request),
                                      who.tenant, ref, body.source, author_of(who), body.note)
    except EDIT_ERRORS as exc:
        raise problem_of(exc) from None
    return version_out(row)


@api.post("/{template_id}/drafts/preview", response_model=DraftPreviewOut)
async def preview_draft(template_id: TemplateId, body: SourceIn, request: Request,
                        who: Reader) -> DraftPreviewOut:
    """Renders an unsaved source with sample data for every channel × tone of its locale,
    with the preview warnings (SMS segments and encoding, undefined variables, HTML size)."""
    ref = template_ref(who, template_id)
    try:
        checked = await run_in_threadpool(editing.preview_source, renderer_of(request), ref,
                                          body.source)
    except EDIT_ERRORS as exc:
        raise problem_of(exc) from None
    return draft_preview_out(ref, checked)


@api.post("/{template_id}/versions/{number}/publish", response_model=VersionOut,
          responses=CONFLICT)
async def publish_version(template_id: TemplateId, number: Number, request: Request,
                          who: Publisher, body: PublishIn | None = None) -> VersionOut:
    """Publishes a draft: the next message of this template uses it, in every process."""
    ref = template_ref(who, template_id)
    runtime = request.app.state.runtime
    try:
        row = await run_in_threadpool(editing.publish, runtime.db, renderer_of(request),
                                      who.tenant, ref, number, author_of(who),
                                      bool(body and body.confirm))
    except EDIT_ERRORS as exc:
        raise problem_of(exc) from None
    return version_out(row)


@api.post("/{template_id}/versions/{number}/rollback", response_model=VersionOut,
          status_code=201, responses=CONFLICT)
async def rollback_version(template_id: TemplateId, number: Number, request: Request,
                           who: Publisher) -> VersionOut:
    """Publishes an earlier version again, as a new version copying its source."""
    ref = template_ref(who, template_id)
    try:
        row = await run_in_threadpool(editing.rollback, request.app.state.runtime.db,
                                      who.tenant, ref, number, author_of(who))
    except EDIT_ERRORS as exc:
        raise problem_of(exc) from None
    return version_out(row)


@api.post("/{template_id}/unpublish", status_code=204, responses=CONFLICT)
async def unpublish(template_id: TemplateId, request: Request, who: Publisher) -> None:
    """Returns the template to the catalog file (the published version is archived)."""
    ref = template_ref(who, template_id)
    try:
        done = await run_in_threadpool(editing.unpublish, request.app.state.runtime.db,
                                       who.tenant, ref, author_of(who))
    except EDIT_ERRORS as exc:
        raise problem_of(exc) from None
    if not done:
        raise Problem(409, "not-published", f"{ref.template_id} already uses the catalog file")


def _router() -> APIRouter:
    from hub.web.templates.editor import router as editor

    combined = APIRouter()
    combined.include_router(api)
    combined.include_router(editor)
    return combined


router = _router()
