"""Health, readiness and Prometheus metrics."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from sqlalchemy import text

from hub import migrate
from hub.api.problems import problem_response
from hub.worker import refresh_queue_metrics

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", response_model=None)
def readyz(request: Request) -> Any:
    """The database answers and its schema is at the newest migration."""
    db = request.app.state.runtime.db
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        current = migrate.is_current(db)
    except Exception as exc:
        return problem_response(503, "not-ready", f"database unreachable: {type(exc).__name__}")
    if not current:
        return problem_response(503, "not-ready", "database schema is not current; run hub migrate")
    return {"status": "ready"}


@router.get("/metrics", response_class=PlainTextResponse)  # declares text/plain
def metrics(request: Request) -> Response:
    """Prometheus exposition."""
    refresh_queue_metrics(request.app.state.runtime.db)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # several processes: sum their files
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
