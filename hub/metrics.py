"""Prometheus metrics of the hub.

With several processes (`hub serve --workers N`, `hub worker`), set PROMETHEUS_MULTIPROC_DIR to
one directory for all of them on a host: `/metrics` then sums every process's counters.
`hub serve --workers N` sets a private one when none is given; `hub worker --metrics-port`
serves the same registry from a worker host.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

EVENTS_ACCEPTED = Counter(
    "hub_events_accepted_total", "Events accepted by the intake API", ["type"]
)
EVENTS_DUPLICATE = Counter("hub_events_duplicate_total", "Re-posted events answered from store")
INTAKE_GROUP = Histogram("hub_intake_group_requests",
                         "API requests whose events shared one intake transaction (group commit)",
                         buckets=(1, 2, 4, 8, 16, 32, 64))
DECISIONS = Counter(
    "hub_decisions_total", "Per-channel decisions by outcome", ["channel", "outcome", "reason"]
)
SEND_LATENCY = Histogram(
    "hub_send_latency_seconds", "Time of one provider call", ["channel"],
    buckets=_LATENCY_BUCKETS,
)
PROVIDER_LATENCY = Histogram(
    "hub_provider_latency_seconds", "Time of one provider call, per provider adapter",
    ["provider"], buckets=_LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge("hub_sends_in_flight", "Provider calls in flight right now",
                  multiprocess_mode="livesum")
JOBS_HELD = Gauge("hub_jobs_held", "Outbox jobs leased by this process's engine",
                  multiprocess_mode="livesum")
UNKNOWN_OUTCOMES = Counter(
    "hub_send_unknown_total", "Provider calls whose outcome was unknown (timeout after the "
    "request was sent), by how they were settled", ["provider", "settled"],
)
# Read from the store at scrape time: with several processes the latest reading is the answer.
QUEUE_LAG = Gauge("hub_outbox_lag_seconds", "Age of the oldest outbox job ready to run",
                  multiprocess_mode="mostrecent")
QUEUE_DEPTH = Gauge("hub_outbox_pending", "Outbox jobs waiting (ready or deferred)",
                    multiprocess_mode="mostrecent")
LANE_DEPTH = Gauge("hub_outbox_lane_ready", "Outbox jobs ready to run, per lane", ["lane"],
                   multiprocess_mode="mostrecent")
LANE_AGE = Gauge("hub_outbox_lane_age_seconds", "Age of the oldest ready job, per lane",
                 ["lane"], multiprocess_mode="mostrecent")
DEAD_LETTERS = Counter("hub_dead_letters_total", "Jobs given up after the last attempt")

# --- provider rate limits (issue 12 item 4) ---
RATE_LIMIT_WAIT = Histogram(
    "hub_rate_limit_wait_seconds",
    "Time a send waited for its provider's rate limit (HUB_<PROVIDER>_MPS)",
    ["provider"],
    buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RATE_LIMIT_PENALTIES = Counter(
    "hub_rate_limit_penalties_total", "Provider answers with Retry-After that paused a bucket",
    ["provider"])
RATE_LIMIT_DEFERRED = Counter(
    "hub_rate_limit_deferred_total",
    "Sends deferred because the next slot was beyond HUB_RATE_LIMIT_MAX_WAIT_SECONDS", ["provider"])
