"""The campaign part of `hub demo`: an audience of newsletter readers, a campaign with two
variants and a holdout, a few clicks through `/c/`, a conversion, and the report table."""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

READERS = 24
_TRACKED = re.compile(r"https?://\S+/c/[0-9A-Za-z]+")
SUBJECTS = {"a": "Wysyłka taniej o 20%", "b": "Tydzień bez opłat za odbiór"}


def _daytime_zone() -> str:
    """A fixed-offset zone where it is about noon now: the demo runs at any hour, and quiet
    hours would otherwise hold its marketing e-mails until the morning."""
    offset = (12 - datetime.now(UTC).hour + 12) % 24 - 12  # hours east of UTC, -12..11
    return f"Etc/GMT{-offset:+d}" if offset else "Etc/UTC"


def _readers(http: httpx.Client) -> None:
    """Customers with a verified e-mail; all but the last four said yes to the newsletter."""
    zone = _daytime_zone()
    for n in range(READERS):
        customer = f"c-4{n:03d}"
        http.put(f"/v1/customers/{customer}", json={
            "name": f"Czytelnik {n + 1}", "email": f"reader{n}@example.pl",
            "email_verified": True, "time_zone": zone,
            "traits": {"newsletter": True}}).raise_for_status()
        if n < READERS - 4:
            http.post(f"/v1/customers/{customer}/consents", json={
                "purpose": "marketing", "channel": "email", "action": "granted",
                "source": "checkout"}).raise_for_status()


def _copy(subject: str, body: str) -> dict[str, Any]:
    return {"pl": {"email": {"subject": subject, "heading": "Dzień dobry, {{ customer.name }}!",
                             "body": body, "button": "Sprawdź"},
                   "url": "https://parcelhub.example/oferta"}}


def _campaign(audience_id: str) -> dict[str, Any]:
    return {"name": "Grudzień", "audience_id": audience_id, "category": "marketing",
            "channels": ["email"], "holdout_percent": 20, "schedule": {"kind": "now"},
            "variants": [
                {"name": "a", "weight": 50, "templates": _copy(
                    SUBJECTS["a"], "Do niedzieli każda paczka kosztuje 20% mniej.")},
                {"name": "b", "weight": 50, "templates": _copy(
                    SUBJECTS["b"], "Przez cały tydzień odbiór w automacie bez opłat.")}]}


def _wait_sent(http: httpx.Client, path: str, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state: dict[str, Any] = http.get(path).json()
        progress = state["progress"]
        done = progress["sent"] + progress["skipped"] >= progress["queued"] > 0
        if (state["state"] == "completed" and done) or time.monotonic() > deadline:
            return state
        time.sleep(0.2)


def _tracked_links(outbox: Path) -> list[tuple[str, str, str]]:
    """(variant, tracked link, customer id) of each campaign e-mail the console channel
    wrote (the demo's readers are reader<n>@example.pl, customer c-4<n>)."""
    found = []
    for line in outbox.read_text("utf-8").splitlines():
        message = json.loads(line)
        parts = message.get("parts") or {}
        variant = next((v for v, s in SUBJECTS.items() if parts.get("subject") == s), None)
        links = _TRACKED.findall(parts.get("text") or "")
        reader = re.fullmatch(r"reader(\d+)@example\.pl", message.get("to") or "")
        if variant and links and reader:
            found.append((variant, links[0], f"c-4{int(reader.group(1)):03d}"))
    return found


def show_campaign(http: httpx.Client, outbox: Path) -> None:
    """Runs the campaign end to end and prints its report."""
    print("\nCampaign (two variants and a 20 % holdout; docs/campaigns.md)")
    _readers(http)
    audience = http.post("/v1/audiences", json={
        "name": "Newsletter", "filter": {"field": "traits.newsletter", "op": "eq",
                                         "value": True}})
    audience.raise_for_status()
    created = http.post("/v1/campaigns", json=_campaign(audience.json()["id"]))
    created.raise_for_status()
    path = f"/v1/campaigns/{created.json()['id']}"
    http.post(f"{path}/start").raise_for_status()
    state = _wait_sent(http, path)
    print(f"campaign {state['id']} {state['state']}: {state['progress']}")
    links = _tracked_links(outbox)
    clicks = ([link for link in links if link[0] == "a"][:2]
              + [link for link in links if link[0] == "b"][:1])
    for variant, link, customer in clicks:  # a person clicks: a 302 to the offer
        reply = http.get(urlsplit(link).path, headers={"Authorization": "",
                                                      "User-Agent": "Mozilla/5.0 demo"})
        print(f"  {customer} clicked its variant-{variant} link {urlsplit(link).path} -> "
              f"{reply.status_code} {reply.headers.get('location')}")
    if clicks:
        buyer = clicks[0][2]
        http.post("/v1/conversions", json={
            "external_id": "demo-order-1", "customer_id": buyer, "value": "129.90",
            "currency": "PLN", "occurred_at": datetime.now(UTC).isoformat(),
            "campaign_id": state["id"]}).raise_for_status()
        print(f"  {buyer} bought for 129.90 PLN (POST /v1/conversions)")
    _print_report(http.get(f"{path}/report").json())


def _print_report(report: dict[str, Any]) -> None:
    header = ("group", "assigned", "sent", "skipped", "clicked", "converted", "rate (95 % CI)",
              "lift p")
    rows = []
    for g in report["groups"]:
        ci = g["conversion_rate_ci95"]
        rate = (f"{g['conversion_rate']:.0%} ({ci[0]:.0%}–{ci[1]:.0%})"
                if g["conversion_rate"] is not None else "–")
        skipped = ",".join(f"{r}:{n}" for r, n in g["skipped"].items()) or "0"
        lift = f"{g['lift']['p_value']:.2f}" if g["lift"] else "–"
        rows.append((g["variant"], str(g["assigned"]), str(g["sent"]), skipped,
                     str(g["clicked"]), str(g["converted"]), rate, lift))
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print("\n" + line + "\n" + "-" * len(line))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
