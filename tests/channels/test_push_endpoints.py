"""Push endpoints are not an SSRF: known push services only, never an internal address, and
a push service's answer is never echoed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from channels import ErrorClass
from channels.push_endpoints import (
    DEFAULT_PUSH_HOSTS,
    PushEndpointError,
    PushEndpointProblem,
    check_endpoint,
    check_resolved,
    host_allowed,
)
from channels.webpush import WebPushAdapter, generate_vapid_keys
from hub.api import create_app
from tests.channels.test_adapters_wire import msg
from tests.helpers import api_key, make_runtime

P = PushEndpointProblem
ACCEPTED = [
    "https://fcm.googleapis.com/fcm/send/abc:APA91b",
    "https://updates.push.services.mozilla.com/wpush/v2/gAAAA",
    "https://wns2-db5p.notify.windows.com/w/?token=BQYAAA",
    "https://web.push.apple.com/QGuQyavXutnMH",
    "https://FCM.googleapis.com./fcm/send/x",  # case and the root dot do not matter
]
REFUSED = [
    ("http://fcm.googleapis.com/fcm/send/abc", P.NOT_HTTPS),
    ("https://127.0.0.1/push", P.PRIVATE_ADDRESS),
    ("https://[::1]:8443/push", P.PRIVATE_ADDRESS),
    ("https://[::ffff:10.0.0.1]/push", P.PRIVATE_ADDRESS),
    ("https://169.254.169.254/latest/meta-data/", P.PRIVATE_ADDRESS),
    ("https://10.1.2.3/push", P.PRIVATE_ADDRESS),
    ("https://192.168.0.10/push", P.PRIVATE_ADDRESS),
    ("https://8.8.8.8/push", P.HOST_NOT_ALLOWED),
    ("https://localhost/push", P.HOST_NOT_ALLOWED),
    ("https://attacker.example/push", P.HOST_NOT_ALLOWED),
    ("https://fcm.googleapis.com.attacker.example/x", P.HOST_NOT_ALLOWED),
    ("https://notify.windows.com/x", P.HOST_NOT_ALLOWED),  # the wildcard's apex is not in it
    ("https://evilnotify.windows.com/x", P.HOST_NOT_ALLOWED),
    ("https://user:pw@fcm.googleapis.com/x", P.MALFORMED),
    ("https:///x", P.MALFORMED),
    ("https://fcm.googleapis.com:99999/x", P.MALFORMED),
]


@pytest.mark.parametrize("endpoint", ACCEPTED)
def test_known_push_services_are_accepted(endpoint: str) -> None:
    assert check_endpoint(endpoint) == endpoint


@pytest.mark.parametrize(("endpoint", "problem"), REFUSED)
def test_everything_else_is_refused(endpoint: str, problem: PushEndpointProblem) -> None:
    with pytest.raises(PushEndpointError) as caught:
        check_endpoint(endpoint)
    assert caught.value.problem is problem


def test_an_explicit_origin_admits_exactly_that_origin() -> None:
    allowed = [*DEFAULT_PUSH_HOSTS, "http://127.0.0.1:8765"]
    assert check_endpoint("http://127.0.0.1:8765/push/1", allowed)
    for other in ("http://127.0.0.1:8766/push/1", "https://127.0.0.1:8765/push/1",
                  "http://127.0.0.2:8765/push/1"):
        with pytest.raises(PushEndpointError):
            check_endpoint(other, allowed)
    assert not host_allowed("127.0.0.1", allowed)  # an origin entry is not a host pattern


def test_names_resolving_inward_are_refused_at_send_time() -> None:
    allowed = [*DEFAULT_PUSH_HOSTS, "*.push.example"]

    def inward(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "10.0.0.7"]  # one internal answer is enough to refuse

    def outward(host: str, port: int) -> list[str]:
        return ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]

    def nothing(host: str, port: int) -> list[str]:
        raise OSError("no such name")

    with pytest.raises(PushEndpointError) as caught:
        check_resolved("https://rebind.push.example/x", allowed, inward)
    assert caught.value.problem is P.PRIVATE_ADDRESS
    check_resolved("https://real.push.example/x", allowed, outward)
    with pytest.raises(PushEndpointError) as caught:
        check_resolved("https://gone.push.example/x", allowed, nothing)
    assert caught.value.problem is P.UNRESOLVABLE


def test_api_refuses_internal_and_unknown_endpoints(tmp_path: Path) -> None:
    runtime = make_runtime(f"sqlite:///{tmp_path / 'hub.db'}", tmp_path)
    keys = {"p256dh": "B" * 20, "auth": "C" * 10}
    with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {api_key(runtime)}"
        assert client.put("/v1/customers/c-1", json={}).status_code == 201
        for endpoint, problem in REFUSED[1:8]:
            reply = client.post("/v1/customers/c-1/push-subscriptions",
                                json={"endpoint": endpoint, "keys": keys})
            assert reply.status_code == 422, (endpoint, reply.text)
            assert reply.headers["content-type"] == "application/problem+json"
            assert reply.json()["errors"][0]["code"] == problem
        good = {"endpoint": ACCEPTED[0], "keys": keys}
        assert client.post("/v1/customers/c-1/push-subscriptions", json=good).status_code == 201
        profile = client.get("/v1/customers/c-1").json()
    assert [s["endpoint"] for s in profile["push_subscriptions"]] == [ACCEPTED[0]]


def test_adapter_never_posts_to_an_unlisted_loopback_service(fake_push) -> None:
    private, public = generate_vapid_keys()
    adapter = WebPushAdapter(private, "mailto:ops@hub.example")  # the default allow-list
    subscription = fake_push.subscribe(public)
    result = adapter.send(msg("push", json.dumps(subscription), {"title": "t", "body": "b"}))
    assert result.error_class is ErrorClass.PERMANENT and result.deactivate
    assert "private_address" in (result.error or "") or "not_https" in (result.error or "")
    assert fake_push.delivered == [] and fake_push.rejections == []  # no request at all


def test_push_service_answers_are_not_echoed(fake_push) -> None:
    private, public = generate_vapid_keys()
    adapter = WebPushAdapter(private, "mailto:ops@hub.example", allowed_hosts=[fake_push.url])
    subscription = fake_push.subscribe(public)
    fake_push.unsubscribe(subscription)  # the fake answers 410 "subscription expired"
    result = adapter.send(msg("push", json.dumps(subscription), {"title": "t", "body": "b"}))
    assert result.deactivate and fake_push.rejections == ["subscription expired"]
    assert result.error == "webpush 410"
