"""The FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from hub import __version__
from hub.api import (
    audiences,
    campaigns,
    channels,
    clicks,
    events,
    feedback,
    ops,
    preferences,
    problems,
    template_stats,
    templates,
    webhook_endpoints,
)
from hub.api.guard import InputGuard
from hub.api.limits import BodySizeLimit
from hub.logs import configure
from hub.runtime import HubRuntime
from hub.settings import get_settings, refuse_dev_secret


def create_app(runtime: HubRuntime, embedded_worker: bool = False) -> FastAPI:
    """The API bound to a runtime; with `embedded_worker` it also runs the worker thread."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if embedded_worker:
            runtime.start_worker()
        try:
            yield
        finally:
            runtime.stop()

    app = FastAPI(
        title="Parcel Hub",
        version=__version__,
        description="Omnichannel notifications for parcel events: who hears what, where, "
        "in which language, and whether now.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    problems.install(app)
    app.include_router(events.router)
    app.include_router(ops.router)
    app.include_router(preferences.router)
    app.include_router(templates.router)
    app.include_router(channels.router)
    app.include_router(feedback.router)  # issue 15: /f/<token>, GET /v1/feedback
    app.include_router(webhook_endpoints.router)  # issue 15: outgoing webhooks
    app.include_router(campaigns.router)  # issue 13: campaigns, their progress and reports
    app.include_router(template_stats.router)  # issue 13: per template totals
    app.include_router(audiences.router)  # issue 13: audiences and their counts
    app.include_router(clicks.router)  # issue 13: /c/<token>, POST /v1/conversions
    problems.declare_problems(app)
    app.add_middleware(InputGuard)  # inside the size limit, which bounds what it buffers
    app.add_middleware(BodySizeLimit, max_bytes=runtime.settings.max_body_bytes)
    return app


def app_from_settings() -> FastAPI:
    """Factory for `uvicorn --factory` (used by `hub serve --workers N`)."""
    settings = get_settings()
    configure(settings.log_level, settings.log_json)  # each uvicorn worker process logs alike
    refuse_dev_secret(settings)  # also when started by uvicorn directly, without `hub serve`
    return create_app(HubRuntime.build(settings), embedded_worker=settings.embedded_worker)
