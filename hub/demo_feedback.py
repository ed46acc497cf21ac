"""The feedback part of `hub demo`: a "how was your delivery?" e-mail, one tap on its
rating link, a second tap that records nothing new, and the statistics."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

_RATE = re.compile(r"^(\d+): (\S+/f/\S+)$", re.M)
_SCORE = 9


def feedback_request(customer: dict[str, Any]) -> dict[str, Any]:
    """A feedback request for a delivered parcel (the follow-up rules schedule these)."""
    return {"event_id": f"demo-{customer['id']}-feedback", "type": "parcel.feedback_request",
            "occurred_at": "2026-11-26T10:00:00+00:00", "customer": {"id": customer["id"]},
            "parcel": {"tracking_number": "PL9000000000", "carrier": "demo-carrier",
                       "pickup_point": {"id": "WAW123M", "name": "Paczkomat WAW123M"}},
            "data": {}}


def _rating_links(outbox: Path, timeout: float = 10.0) -> dict[int, str]:
    """The one-tap links of the feedback e-mail the console channel wrote."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = outbox.read_text("utf-8").splitlines() if outbox.exists() else []
        for line in reversed(lines):
            text = (json.loads(line).get("parts") or {}).get("text") or ""
            found = {int(score): url for score, url in _RATE.findall(text)}
            if len(found) == 11:
                return found
        time.sleep(0.05)
    raise SystemExit("demo: the feedback e-mail was not sent")


def show_feedback(http: httpx.Client, outbox: Path, customer: dict[str, Any]) -> None:
    """Posts the request, answers it by its one-tap link twice, prints what was recorded."""
    http.post("/v1/events", json=feedback_request(customer)).raise_for_status()
    links = _rating_links(outbox)
    path = urlsplit(links[_SCORE]).path  # links name HUB_PUBLIC_BASE_URL; ask this server
    first = http.get(path, headers={"Authorization": ""})
    form = re.search(r'name="form" value="([^"]+)"', first.text)
    comment = http.post(f"{path}/comment", headers={"Authorization": ""},
                        data={"comment": "Szybko i sprawnie.", "form": form.group(1) if form
                              else ""})
    again = http.get(urlsplit(links[3]).path, headers={"Authorization": ""})
    stats = http.get("/v1/feedback").json()["overall"]
    print(f"\nfeedback: {customer['id']} got an e-mail with 11 one-tap links "
          f"(0-10); tapped {_SCORE} -> HTTP {first.status_code}, "
          f"'{_heading(first.text)}'")
    print("feedback: posted a comment to /f/<token>/comment -> "
          f"HTTP {comment.status_code}, '{_heading(comment.text)}'")
    print(f"feedback: tapped 3 afterwards -> HTTP {again.status_code}, "
          f"'{_heading(again.text)}' (nothing new recorded)")
    print(f"feedback: GET /v1/feedback -> {stats['count']} answer, average "
          f"{stats['average']}, NPS {stats['nps']}")


def _heading(html: str) -> str:
    found = re.search(r"<h1>(.*?)</h1>", html)
    return found.group(1) if found else ""
