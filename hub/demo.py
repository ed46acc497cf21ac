"""`hub demo`: the real server on a loopback port, a temporary SQLite store, three parcel journeys."""

from __future__ import annotations

import os
import socket
import tempfile
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from hub.demo_app import CUSTOMER as APP_CUSTOMER
from hub.demo_app import run_app_demo
from hub.demo_campaign import show_campaign
from hub.demo_feedback import show_feedback

JOURNEY = (
    "parcel.label_created",
    "parcel.in_transit",
    "parcel.out_for_delivery",
    "parcel.delivery_attempt_failed",
    "parcel.ready_for_pickup",
    "parcel.delivered",
)

CUSTOMERS: tuple[dict[str, Any], ...] = (
    {"id": "c-1001", "name": "Anna Kowalska", "phone": "+48512345678",
     "email": "anna.kowalska@example.pl", "locale": "pl", "tone": "formal"},
    {"id": "c-2001", "name": "James Carter", "email": "james.carter@example.com",
     "locale": "en", "tone": "informal"},
    {"id": "c-1002", "name": "Олена Шевченко", "phone": "+48601234567",
     "locale": "uk", "tone": "informal"},
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def journey_events(customer: dict[str, Any], index: int, start: datetime) -> list[dict[str, Any]]:
    """A realistic parcel journey for one customer, one event per status."""
    tracking = f"PL{9000000000 + index:010d}"
    parcel: dict[str, Any] = {
        "tracking_number": tracking,
        "carrier": "demo-carrier",
        "links": {"track": f"https://track.example.pl/{tracking}",
                  "reschedule": f"https://track.example.pl/{tracking}/reschedule"},
        "eta": {"from": (start + timedelta(days=1, hours=2)).isoformat(),
                "to": (start + timedelta(days=1, hours=4)).isoformat()},
    }
    events = []
    for step, etype in enumerate(JOURNEY):
        body: dict[str, Any] = {"tracking_number": tracking, **parcel}
        if etype == "parcel.ready_for_pickup":
            body["pickup_point"] = {
                "id": "WAW123M", "name": "Paczkomat WAW123M",
                "address": "ul. Marszałkowska 10, 00-001 Warszawa", "code": f"{482913 + index}",
                "deadline": (start + timedelta(days=3)).isoformat(),
            }
        events.append({
            "event_id": f"demo-{customer['id']}-{step + 1}",
            "type": etype,
            "occurred_at": (start + timedelta(hours=5 * step)).isoformat(),
            "customer": customer,
            "parcel": body,
            "data": {},
        })
    return events


def run_demo() -> int:
    """Runs the demo end to end and prints what was sent and skipped; returns an exit code."""
    with tempfile.TemporaryDirectory(prefix="hub-demo-") as tmp:
        os.environ.update({
            "HUB_DATABASE_URL": f"sqlite:///{Path(tmp) / 'demo.db'}",
            "HUB_CONSOLE_OUTBOX_PATH": str(Path(tmp) / "outbox.jsonl"),
            "HUB_LOG_LEVEL": "WARNING",
            "HUB_WORKER_POLL_SECONDS": "0.05",
            "HUB_FOLLOWUP_POLL_SECONDS": "0.2",
        })
        return _run(Path(tmp))


def _run(tmp: Path) -> int:
    import uvicorn

    from hub.api.app import create_app
    from hub.keys import Scope, create_key
    from hub.logs import configure
    from hub.runtime import HubRuntime
    from hub.settings import get_settings

    get_settings.cache_clear()
    settings = get_settings()
    configure(settings.log_level, json=True)
    started = time.monotonic()
    runtime = HubRuntime.build(settings)
    token = create_key(runtime.db, "demo-carrier",
                       [Scope.EVENTS_WRITE, Scope.EVENTS_READ, Scope.CUSTOMERS_WRITE,
                        Scope.FEEDBACK_READ, Scope.AUDIENCES_WRITE, Scope.AUDIENCES_READ,
                        Scope.CAMPAIGNS_WRITE, Scope.CAMPAIGNS_READ, Scope.CONVERSIONS_WRITE])
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(runtime, embedded_worker=True),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    print(f"Parcel Hub demo: API on {base}, store {settings.database_url}\n")
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
            posted = _post_journeys(http)
            _wait_processed(http, posted)
            _print_report(http, posted)
            _followups_demo(http)
            show_feedback(http, tmp / "outbox.jsonl", CUSTOMERS[0])  # issue 15: feedback
            run_app_demo(http, tmp / "outbox.jsonl", journey_events(  # issue 14
                APP_CUSTOMER, 3, datetime.now(UTC) - timedelta(hours=26)))  # ETA: the next 2 h
            show_campaign(http, tmp / "outbox.jsonl")  # issue 13: a campaign and its report
    finally:
        server.should_exit = True
        thread.join(timeout=15)
    print(f"\nDone in {time.monotonic() - started:.1f} s; nothing left running.")
    return 0


def _register_customers(http: httpx.Client) -> None:
    """Profiles through the customer API; Olena prefers e-mail but has none, so SMS steps in."""
    for customer in CUSTOMERS:
        profile = {k: v for k, v in customer.items() if k != "id"}
        http.put(f"/v1/customers/{customer['id']}", json=profile).raise_for_status()
    http.put("/v1/customers/c-1002/preferences",
             json={"channels": {"transactional": ["email", "sms"]}}).raise_for_status()
    print("registered customers; c-1002 prefers e-mail (has none) with SMS as fallback")


def _post_journeys(http: httpx.Client) -> list[str]:
    start = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    posted: list[str] = []
    _register_customers(http)
    for index, customer in enumerate(CUSTOMERS):
        events = journey_events(customer, index, start)
        ordered = events[:3] + events[4:]  # failed attempt is held back: it arrives late
        for event in ordered:
            reply = http.post("/v1/events", json=event)
            reply.raise_for_status()
            posted.append(event["event_id"])
        again = http.post("/v1/events", json=events[0])
        print(f"{customer['id']}: re-posted {events[0]['event_id']} -> "
              f"{again.status_code} {again.json()['status']}")
        late = http.post("/v1/events", json=events[3])
        late.raise_for_status()
        posted.append(events[3]["event_id"])
        print(f"{customer['id']}: posted {events[3]['event_id']} "
              f"({events[3]['type']}) after 'delivered' (out of order)")
    return posted


def _wait_processed(http: httpx.Client, event_ids: list[str], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    pending = list(event_ids)
    while pending and time.monotonic() < deadline:
        pending = [e for e in pending
                   if http.get(f"/v1/events/{e}").json()["state"] in ("accepted", "processing")]
        if pending:
            time.sleep(0.1)
    if pending:
        raise SystemExit(f"demo: {len(pending)} events not processed in {timeout:.0f} s")


def _print_report(http: httpx.Client, event_ids: list[str]) -> None:
    """Per customer and event: each channel's outcome and reason, and the text that went out."""
    rows: list[tuple[str, str, str, str, str, str]] = []
    for event_id in event_ids:
        event = http.get(f"/v1/events/{event_id}").json()
        sent = {n["channel"]: n for n in event["notifications"]}
        for d in event["decisions"]:
            text = ""
            if d["channel"] in sent and d["outcome"] == "sent":
                parts = sent[d["channel"]]["content"] or {}
                text = parts.get("body") or parts.get("subject") or ""
            rows.append((event["customer_id"], event["type"].removeprefix("parcel."),
                         d["channel"], d["outcome"], d["reason"], text))
    header = ("customer", "event", "channel", "outcome", "reason")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print("\n" + line + "\n" + "-" * len(line))
    previous = ("", "")
    for row in rows:
        shown = [*row[:5]]
        if row[:2] == previous:  # same customer and event: only the channel columns
            shown[0] = shown[1] = ""
        previous = row[:2]
        print("  ".join(c.ljust(w) for c, w in zip(shown, widths, strict=True)).rstrip())
        for text_line in textwrap.wrap(row[5], 96):
            print(" " * (widths[0] + 2) + "│ " + text_line)
    sent_count = sum(r[3] == "sent" for r in rows)
    print(f"\n{len(event_ids)} events, {sent_count} messages sent, "
          f"{len(rows) - sent_count} channel decisions not sent (reasons above).")


def _pickup(customer: dict[str, Any], event_id: str, tracking: str, deadline: datetime
            ) -> dict[str, Any]:
    return {"event_id": event_id, "type": "parcel.ready_for_pickup",
            "occurred_at": datetime.now(UTC).isoformat(), "customer": {"id": customer["id"]},
            "parcel": {"tracking_number": tracking,
                       "links": {"track": f"https://track.example.pl/{tracking}"},
                       "pickup_point": {"id": "WAW123M", "name": "Paczkomat WAW123M",
                                        "code": "731904", "deadline": deadline.isoformat()}},
            "data": {}}


def _print_timers(http: httpx.Client, event_id: str) -> list[dict[str, Any]]:
    timers: list[dict[str, Any]] = http.get(f"/v1/events/{event_id}").json()["followups"]
    for t in timers:
        why = f" ({t['reason']}: {t['detail']})" if t["reason"] else ""
        fired = f" -> event {t['event_id']}" if t["event_id"] else ""
        print(f"  timer {t['rule']} {t['offset']:>5} at {t['fire_at'][:19]}Z  "
              f"{t['state']}{why}{fired}")
    return timers


def _followups_demo(http: httpx.Client) -> None:
    """Reminders the hub schedules itself: one fires (its deadline is set 24 h + 3 s ahead,
    so the −24 h reminder is due 3 s from now), one is cancelled by `delivered`."""
    now = datetime.now(UTC).replace(microsecond=0)
    anna, james = CUSTOMERS[0], CUSTOMERS[1]
    print("\nFollow-up timers (rules in hub/followup_rules.toml)")
    http.post("/v1/events", json=_pickup(anna, "demo-fu-1", "PL9100000001",
                                         now + timedelta(hours=24, seconds=3))).raise_for_status()
    print("c-1001: ready_for_pickup, deadline in 24 h 3 s:")
    _print_timers(http, "demo-fu-1")
    http.post("/v1/events", json=_pickup(james, "demo-fu-2", "PL9100000002",
                                         now + timedelta(hours=30))).raise_for_status()
    print("c-2001: ready_for_pickup, deadline in 30 h:")
    _print_timers(http, "demo-fu-2")
    delivered = {**_pickup(james, "demo-fu-3", "PL9100000002", now), "type": "parcel.delivered"}
    http.post("/v1/events", json=delivered).raise_for_status()
    print("c-2001: delivered before the reminders:")
    _print_timers(http, "demo-fu-2")
    fired = _wait_fired(http, "demo-fu-1", timeout=15.0)
    print("c-1001: 3 s later:")
    _print_timers(http, "demo-fu-1")
    if fired:
        _wait_processed(http, [fired])
        view = http.get(f"/v1/events/{fired}").json()
        bodies = {n["channel"]: (n["content"] or {}).get("body", "")
                  for n in view["notifications"]}
        print(f"  {view['type']} {fired} went through the normal pipeline (quiet hours hold "
              "it unless the deadline is within 12 h):")
        for d in view["decisions"]:
            text = f": {bodies[d['channel']]}" if d["channel"] in bodies else ""
            print(f"    {d['channel']:<6} {d['outcome']:<8} {d['reason']}{text}")


def _wait_fired(http: httpx.Client, event_id: str, timeout: float) -> str | None:
    """The id of the first fired timer's event, waiting at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for timer in http.get(f"/v1/events/{event_id}").json()["followups"]:
            if timer["state"] == "fired" and timer["event_id"]:
                return str(timer["event_id"])
        time.sleep(0.2)
    print(f"  (no reminder fired within {timeout:.0f} s)")
    return None
