"""`hub worker --metrics-port`: the worker's Prometheus endpoint, for scale-out hosts."""

from __future__ import annotations

import os
import threading

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess, start_http_server

from hub.db import Database
from hub.logs import get_logger
from hub.settings import Settings
from hub.worker import refresh_queue_metrics

log = get_logger("scrape")
QUEUE_REFRESH_SECONDS = 5.0


def serve_metrics(settings: Settings, port: int, host: str = "0.0.0.0") -> threading.Thread:  # noqa: S104
    """Serves /metrics on `port` (summing every process on the host when
    PROMETHEUS_MULTIPROC_DIR is set) and keeps the queue gauges fresh."""
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    start_http_server(port, addr=host, registry=registry)
    thread = threading.Thread(target=_refresh_forever, args=(settings,), name="hub-queue-gauges",
                              daemon=True)
    thread.start()
    log.info("metrics_listening", port=port)
    return thread


def _refresh_forever(settings: Settings) -> None:
    """Queue depth and age per lane come from the store, every few seconds."""
    db = Database(settings.database_url)
    stop = threading.Event()
    while True:
        try:
            refresh_queue_metrics(db)
        except Exception:  # the store is down: the gauges keep their last reading
            log.warning("queue_gauges_failed")
        if stop.wait(QUEUE_REFRESH_SECONDS):
            return
