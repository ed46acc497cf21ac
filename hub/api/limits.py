"""ASGI middleware that refuses bodies over the size limit before they are read into memory."""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException

from hub.api.problems import PROBLEM_JSON, TYPE_BASE


class BodyTooLarge(HTTPException):
    """Raised while streaming; an HTTPException so the framework answers 413, not 400."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"The body exceeds {max_bytes} bytes.")


class BodySizeLimit:
    """Answers 413 when Content-Length, or the streamed body, exceeds `max_bytes`."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._reject(scope, send)
            return
        seen = 0
        started = False

        async def limited_receive() -> dict[str, Any]:
            nonlocal seen
            message: dict[str, Any] = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(scope, send)

    async def _reject(self, scope: dict[str, Any], send: Any) -> None:
        body = json.dumps({
            "type": TYPE_BASE + "body-too-large",
            "title": "Request body too large",
            "status": 413,
            "detail": f"The body exceeds {self.max_bytes} bytes.",
            "instance": scope.get("path"),
        }).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", PROBLEM_JSON.encode()),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
