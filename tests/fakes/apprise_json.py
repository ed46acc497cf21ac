"""An HTTP endpoint for Apprise's json:// URLs: records each JSON notification."""

from __future__ import annotations

from typing import Any

from tests.fakes.base import FakeServer, Reply, Request, json_reply


class FakeJsonEndpoint(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.received: list[dict[str, Any]] = []

    def handle(self, req: Request) -> Reply:
        if req.method != "POST":
            return json_reply(405, {"error": "POST only"})
        self.received.append({"path": req.path, "body": req.json(), "headers": req.headers})
        return json_reply(200, {"ok": True})

    def apprise_url(self, path: str = "notify") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"
