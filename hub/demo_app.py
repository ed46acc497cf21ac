"""The carrier's app in `hub demo`: a customer with an Android and an iPhone gets a parcel
journey as app notifications (one per device, replaced per parcel on the phone) and in the
app's inbox; the inbox and its unread count are printed at the end as the app reads them."""

from __future__ import annotations

import json
import textwrap
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

WARSAW = ZoneInfo("Europe/Warsaw")
CUSTOMER: dict[str, Any] = {"id": "c-3001", "name": "Marta Wiśniewska",
                            "phone": "+48511222333", "locale": "pl", "tone": "informal"}
DEVICES = (
    {"platform": "android", "app_id": "pl.example.parcels", "app_version": "5.2.0",
     "token": "dQw4w9WgXcQ:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx" + "k" * 100},
    {"platform": "ios", "app_id": "pl.example.parcels", "app_version": "5.2.1",
     "token": "7c1e0f2a9b8d4c6e5f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e"},
)


def register_app_customer(http: httpx.Client) -> None:
    """The profile and its two app installations, through the devices API."""
    profile = {k: v for k, v in CUSTOMER.items() if k != "id"}
    http.put(f"/v1/customers/{CUSTOMER['id']}", json=profile).raise_for_status()
    for device in DEVICES:
        http.post(f"/v1/customers/{CUSTOMER['id']}/devices", json=device).raise_for_status()
    listed = http.get(f"/v1/customers/{CUSTOMER['id']}/devices").json()["devices"]
    print(f"\nThe carrier's app: {CUSTOMER['id']} registered "
          + ", ".join(f"{d['platform']} {d['token']}" for d in listed) + " (tokens masked)")


def show_app_channels(http: httpx.Client, event_ids: list[str], outbox: Path) -> None:
    """Per event: what app push and the inbox did; then the notifications per phone and the
    inbox with its unread count."""
    for event_id in event_ids:
        view = http.get(f"/v1/events/{event_id}").json()
        decisions = {d["channel"]: d for d in view["decisions"]}
        row = "  ".join(f"{c} {decisions[c]['outcome']}/{decisions[c]['reason']}"
                        for c in ("app_push", "sms", "inbox"))
        print(f"  {view['type'].removeprefix('parcel.'):<24} {row}")
    tokens = {d["token"]: d["platform"] for d in DEVICES}
    lines = [json.loads(x) for x in outbox.read_text("utf-8").splitlines() if x.strip()]
    pushes = [x for x in lines if x.get("channel") == "app_push" and x.get("to") in tokens]
    print(f"\n  {len(pushes)} app notifications (console adapter in place of FCM and APNs; "
          "the same parcel's newer notice replaces the older one on the phone):")
    for push in pushes:
        print(f"    {tokens[push['to']]:<8} {push['parts']['title']}: {push['parts']['body']}")
    show_inbox_as_the_app(http)


def show_inbox_as_the_app(http: httpx.Client) -> None:
    """What the app shows: the carrier's backend gets a customer session token, and the app
    reads the inbox with it (never with an API key); opening the newest item marks it read."""
    customer = CUSTOMER["id"]
    token = http.post(f"/v1/customers/{customer}/session-token",
                      json={"ttl_seconds": 600}).json()["token"]
    with httpx.Client(base_url=str(http.base_url),
                      headers={"Authorization": f"Bearer {token}"}) as app:
        page = app.get(f"/v1/inbox/{customer}").raise_for_status().json()
        print(f"\n  Inbox of {customer} as the app reads it with its session token "
              f"({len(page['items'])} messages, {page['unread_count']} unread), newest first:")
        for item in page["items"]:
            at = datetime.fromisoformat(item["created_at"]).astimezone(WARSAW)
            mark = "•" if item["read_at"] is None else " "
            print(f"   {mark} {at:%H:%M:%S}  {item['title']}")
            for paragraph in item["body"].split("\n\n"):
                for text_line in textwrap.wrap(paragraph, 88):
                    print(f"      {text_line}")
        newest = page["items"][0]["id"]
        read = app.post(f"/v1/inbox/{customer}/items/{newest}/read").raise_for_status().json()
        print(f"  The customer opens the newest one: {read['unread_count']} unread left. "
              f"Another customer's inbox with this token: "
              f"{app.get('/v1/inbox/c-1001').status_code}.")


def run_app_demo(http: httpx.Client, outbox: Path, journey: list[dict[str, Any]]) -> None:
    """Registers the app customer, posts the journey and prints what the app received."""
    register_app_customer(http)
    for event in journey:  # one by one, as a parcel's statuses arrive in life
        http.post("/v1/events", json=event).raise_for_status()
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and http.get(f"/v1/events/{event['event_id']}").json()[
                "state"] in ("accepted", "processing"):
            time.sleep(0.05)
    ids = [e["event_id"] for e in journey]
    print(f"  {CUSTOMER['id']}'s journey (app push first, SMS only if every phone fails; "
          "the inbox gets a copy; at night non-urgent app push waits, the inbox does not):")
    show_app_channels(http, ids, outbox)
