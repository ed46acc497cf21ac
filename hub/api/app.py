"""The FastAPI application."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from hub import __version__
from hub.api import (
    audiences,
    campaigns,
    channels,
    clicks,
    customer_sessions,
    events,
    feedback,
    inbox,
    ops,
    preferences,
    problems,
    template_stats,
    template_versions,
    templates,
    webhook_endpoints,
)
from hub.api.guard import InputGuard
from hub.api.limits import BodySizeLimit
from hub.inbox_feed import InboxFeed
from hub.logs import configure
from hub.runtime import HubRuntime
from hub.settings import get_settings, refuse_dev_secret
from hub.web.campaigns import pages as campaign_pages


def create_app(runtime: HubRuntime, embedded_worker: bool = False) -> FastAPI:
    """The API bound to a runtime; with `embedded_worker` it also runs the worker thread.
    Either way it runs the poller that feeds the inbox streams of this process."""
    feed = InboxFeed(runtime.db)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if embedded_worker:
            runtime.start_worker()
        poller = asyncio.create_task(feed.run())
        try:
            yield
        finally:
            feed.close_all()
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            runtime.stop()

    app = FastAPI(
        title="Parcel Hub",
        version=__version__,
        description="Omnichannel notifications for parcel events: who hears what, where, "
        "in which language, and whether now.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.inbox_feed = feed
    problems.install(app)
    app.include_router(events.router)
    app.include_router(ops.router)
    app.include_router(preferences.router)
    app.include_router(templates.router)
    app.include_router(template_versions.router)  # issue 13: drafts published from the page
    app.include_router(channels.router)
    app.include_router(feedback.router)  # issue 15: /f/<token>, GET /v1/feedback
    app.include_router(webhook_endpoints.router)  # issue 15: outgoing webhooks
    app.include_router(inbox.router)  # issue 14: the app's inbox and its live stream
    app.include_router(customer_sessions.router)  # issue 14: customer session tokens
    app.include_router(audiences.router)  # issue 13: audiences and their counts
    app.include_router(clicks.router)  # issue 13: /c/<token>, POST /v1/conversions
    app.include_router(campaigns.router)  # issue 13: campaigns, their progress and reports
    app.include_router(campaign_pages.router)  # issue 13: /ui/campaigns
    app.include_router(template_stats.router)  # issue 13: per template totals
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
