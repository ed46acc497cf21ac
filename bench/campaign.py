"""Campaign bench: one campaign over 100,000 customers, and an urgent notice during it.

The hub runs as real processes (`hub serve` with its embedded worker and campaign runner,
SQLite) against the loopback Twilio of `bench/e2e.py` in its own process, answering after
`--provider-latency-ms` (200). Customers have a verified phone and marketing SMS consent.
It measures:

* the time from `POST /v1/campaigns/{id}/start` until every recipient is assigned and every
  non-holdout recipient's event is queued (target ≤ 30 s for 100,000);
* an urgent `parcel.out_for_delivery` posted while the campaign is being queued: seconds
  from its `202` until it reaches the provider (target ≤ 2 s);
* how many campaign messages reached the provider before the urgent one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.e2e import (  # noqa: E402
    Provider,
    Topology,
    _await,
    _tag,
    _urgent,
    bench_policy_file,
    running_hub,
)

URGENT_PHONE = "+48699999999"


def _campaign_body(audience_id: str) -> dict[str, Any]:
    def copy(text: str) -> dict[str, Any]:
        return {"pl": {"sms": {"text": text}, "url": "https://parcelhub.example/bw"}}

    return {"name": "Bench", "audience_id": audience_id, "category": "marketing",
            "channels": ["sms"], "holdout_percent": 10, "schedule": {"kind": "now"},
            "variants": [{"name": "a", "weight": 50, "templates": copy("Wysylka -20% do niedzieli")},
                         {"name": "b", "weight": 50, "templates": copy("Taniej o 20% do niedzieli")}]}


def run(customers: int, latency_ms: float, urgent_after: float) -> list[tuple[str, str]]:
    """One run; returns (measure, value) rows."""
    provider = Provider()
    provider.set_latency(latency_ms)
    tmp = tempfile.mkdtemp(prefix="bench-campaign-")
    top = Topology("embedded", f"sqlite:///{tmp}/{_tag('c')}.db")
    try:
        with running_hub(top, provider, bench_policy_file(tmp), customers=customers,
                         marketing=True) as (base, token, _procs), \
                httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"},
                             timeout=120) as http:
            audience = http.post("/v1/audiences", json={
                "name": "everyone", "filter": {"field": "segment", "op": "in",
                                               "value": ["individual", "business"]}})
            audience.raise_for_status()
            created = http.post("/v1/campaigns", json=_campaign_body(audience.json()["id"]))
            created.raise_for_status()
            path = f"/v1/campaigns/{created.json()['id']}"
            started = time.time()
            http.post(f"{path}/start").raise_for_status()
            urgent_at = urgent_latency = None
            while True:
                if urgent_at is None and time.time() - started >= urgent_after:
                    http.post("/v1/events", json=_urgent(_tag("u"))).raise_for_status()
                    urgent_at = time.time()
                state = http.get(path).json()
                progress = state["progress"]
                waiting = sum(n for v, n in progress["assigned"].items() if v != "holdout")
                if state["state"] == "completed" and progress["queued"] == waiting:
                    queued_in = time.time() - started
                    break
                if time.time() - started > 600:
                    raise RuntimeError("the campaign was not queued within 10 minutes")
                time.sleep(0.2)
            seen = _await(provider, {URGENT_PHONE}, 30, strict=False)
            if urgent_at is not None and URGENT_PHONE in seen:
                urgent_latency = seen[URGENT_PHONE] - urgent_at
            before = sum(1 for phone, at in seen.items()
                         if phone != URGENT_PHONE and at <= seen.get(URGENT_PHONE, 1e18))
            sent = http.get(path).json()["progress"]
    finally:
        provider.stop()
    return [
        ("customers (audience)", f"{customers:,}"),
        ("assigned per group", ", ".join(f"{k} {v:,}" for k, v in
                                         sorted(progress["assigned"].items()))),
        ("start → every event queued", f"{queued_in:.1f} s (target ≤ 30 s)"),
        ("campaign events queued per second", f"{progress['queued'] / queued_in:,.0f}"),
        (f"urgent notice posted {urgent_after:g} s into the run → provider "
         f"({latency_ms:g} ms latency)",
         f"{urgent_latency:.2f} s (target ≤ 2 s)" if urgent_latency is not None
         else "not at the provider within 30 s"),
        ("campaign messages at the provider before it", f"{before:,}"),
        ("campaign messages sent by the end of queueing", f"{sent['sent']:,}"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--provider-latency-ms", type=float, default=200)
    parser.add_argument("--urgent-after", type=float, default=3.0,
                        help="seconds after the start to post the urgent notice")
    args = parser.parse_args()
    rows = run(args.customers, args.provider_latency_ms, args.urgent_after)
    width = max(len(m) for m, _ in rows)
    print(f"| {'measure'.ljust(width)} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for measure, value in rows:
        print(f"| {measure.ljust(width)} | {value} |")


if __name__ == "__main__":
    main()
