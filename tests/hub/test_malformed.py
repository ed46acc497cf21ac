"""1,000 random malformed bodies: every answer is a 4xx problem, never a 5xx."""

from __future__ import annotations

import json
import random
from pathlib import Path

from fastapi.testclient import TestClient

from hub.api import create_app
from tests.helpers import api_key, event, make_runtime

JUNK_VALUES = [None, True, -1, 1e308, "", "x" * 300, [], {}, {"a": [1, {"b": None}]},
               "2026-13-45T99:99:99+01:00", "\x00\ud7ff", "🙂" * 50, 2**70]


def _mutate(rng: random.Random, body: dict) -> bytes:
    choice = rng.randrange(6)
    if choice == 0:  # truncated or corrupted JSON text
        text = json.dumps(body)
        cut = rng.randrange(len(text))
        return (text[:cut] + rng.choice(["", "}", "\\", "\x00", "ą"])).encode()
    if choice == 1:  # a random field replaced by a junk value
        path = rng.choice([["type"], ["event_id"], ["occurred_at"], ["customer"], ["customer", "id"],
                           ["customer", "email"], ["parcel"], ["parcel", "tracking_number"],
                           ["parcel", "eta"], ["parcel", "cod"], ["data"]])
        target = body
        for key in path[:-1]:
            target = target.setdefault(key, {}) if isinstance(target, dict) else target
        if isinstance(target, dict):
            target[path[-1]] = rng.choice(JUNK_VALUES)
        return json.dumps(body).encode()
    if choice == 2:  # a field removed
        body.pop(rng.choice(list(body)), None)
        return json.dumps(body).encode()
    if choice == 3:  # unknown extra field
        body[rng.choice(["extra", "__proto__", "eventId"])] = rng.choice(JUNK_VALUES)
        return json.dumps(body).encode()
    if choice == 4:  # not an object at all
        return json.dumps(rng.choice(JUNK_VALUES)).encode()
    return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))


def test_malformed_bodies_never_get_5xx(tmp_path: Path) -> None:
    runtime = make_runtime(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path)
    rng = random.Random(20261126)
    statuses: dict[int, int] = {}
    with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {api_key(runtime)}"
        for i in range(1000):
            payload = _mutate(rng, event(f"fuzz-{i}"))
            url = "/v1/events" if i % 4 else "/v1/events/batch"
            if url.endswith("batch") and rng.random() < 0.5:
                payload = b'{"events": [' + payload + b"]}"
            reply = client.post(url, content=payload, headers={"content-type": "application/json"})
            statuses[reply.status_code] = statuses.get(reply.status_code, 0) + 1
            assert reply.status_code < 500, (payload[:200], reply.text)
            if reply.status_code >= 400:
                assert reply.headers["content-type"] == "application/problem+json"
    print("statuses:", dict(sorted(statuses.items())))
    assert sum(v for k, v in statuses.items() if k >= 400) > 900
