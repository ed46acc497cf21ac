"""`/v1/audiences`: saved filters over the tenant's customers and their counts (matched, and
reachable per channel). Audiences belong to the key's tenant; another tenant's id is 404."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from hub import audiences
from hub.api.auth import require
from hub.api.problems import Problem
from hub.audience_filter import AudienceFilter, parse_filter
from hub.audience_models import Audience
from hub.keys import Principal, Scope

router = APIRouter(prefix="/v1/audiences", tags=["audiences"])
Reader = Annotated[Principal, Depends(require(Scope.AUDIENCES_READ))]
Writer = Annotated[Principal, Depends(require(Scope.AUDIENCES_WRITE))]
PurposeName = Literal["marketing", "loyalty"]
AudienceId = Annotated[str, Field(max_length=40)]


class AudienceIn(BaseModel):
    """A named filter; `purpose` decides whose consent makes a customer reachable."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    name: Annotated[str, Field(min_length=1, max_length=200)]
    purpose: PurposeName = "marketing"
    filter: AudienceFilter


class CountIn(BaseModel):
    """An unsaved filter to count (the page's live count)."""

    model_config = ConfigDict(extra="forbid")
    purpose: PurposeName = "marketing"
    filter: AudienceFilter


def _json(row: Audience) -> dict[str, Any]:
    return {"id": row.public_id, "name": row.name, "purpose": row.purpose,
            "filter": row.filter, "created_by": row.created_by,
            "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat()}


def _db(request: Request) -> Any:
    return request.app.state.runtime.db


def _owned(session: Session, who: Principal, audience_id: str) -> Audience:
    row = audiences.get(session, who.tenant, audience_id)
    if row is None:
        raise Problem(404, "not-found", f"No audience {audience_id!r}.")
    return row


def _count_json(session: Session, tenant: str, audience: AudienceFilter, purpose: str
                ) -> dict[str, Any]:
    started = time.perf_counter()
    counted = audiences.count(session, tenant, audience, purpose)
    return {"matched": counted.matched, "reachable": counted.reachable, "purpose": purpose,
            "took_ms": round((time.perf_counter() - started) * 1000, 1)}


@router.post("", status_code=201)
def create_audience(body: AudienceIn, request: Request, who: Writer) -> dict[str, Any]:
    """Saves an audience of the key's tenant."""
    with _db(request).transaction() as session:
        return _json(audiences.create(session, who.tenant, who.producer, body.name,
                                      body.filter, body.purpose))


@router.get("", responses={404: {"description": "The `after` cursor names no audience"}})
def list_audiences(request: Request, who: Reader,
                   limit: Annotated[int, Query(ge=1, le=200)] = 50,
                   after: Annotated[str | None, Query(max_length=40)] = None) -> dict[str, Any]:
    """The tenant's audiences, oldest first; `next` continues the list."""
    with _db(request).sessions() as session:
        start = _owned(session, who, after).id if after else 0
        rows = audiences.listing(session, who.tenant, limit, start)
        return {"items": [_json(r) for r in rows],
                "next": rows[-1].public_id if len(rows) == limit else None}


@router.get("/{audience_id}")
def get_audience(audience_id: AudienceId, request: Request, who: Reader) -> dict[str, Any]:
    with _db(request).sessions() as session:
        return _json(_owned(session, who, audience_id))


@router.put("/{audience_id}")
def put_audience(audience_id: AudienceId, body: AudienceIn, request: Request, who: Writer
                 ) -> dict[str, Any]:
    """Replaces the audience's name, purpose and filter."""
    with _db(request).transaction() as session:
        row = _owned(session, who, audience_id)
        row.name, row.purpose = body.name, body.purpose
        row.filter = audiences.stored_filter(body.filter)
        session.flush()
        return _json(row)


@router.delete("/{audience_id}", status_code=204)
def delete_audience(audience_id: AudienceId, request: Request, who: Writer) -> Response:
    with _db(request).transaction() as session:
        session.delete(_owned(session, who, audience_id))
    return Response(status_code=204)


@router.post("/count")
async def count_filter(body: CountIn, request: Request, who: Reader) -> dict[str, Any]:
    """Counts an unsaved filter: matched, and reachable per channel for the purpose."""

    def run() -> dict[str, Any]:
        with _db(request).sessions() as session:
            return _count_json(session, who.tenant, body.filter, body.purpose)

    return await run_in_threadpool(run)


@router.post("/{audience_id}/count")
async def count_audience(audience_id: AudienceId, request: Request, who: Reader
                         ) -> dict[str, Any]:
    """Counts a saved audience (its filter as it is now, over the customers as they are)."""

    def run() -> dict[str, Any]:
        with _db(request).sessions() as session:
            row = _owned(session, who, audience_id)
            return {"id": row.public_id, **_count_json(
                session, who.tenant, parse_filter(row.filter), row.purpose)}

    return await run_in_threadpool(run)
