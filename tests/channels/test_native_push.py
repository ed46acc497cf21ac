"""The FCM and APNs adapters against their loopback fakes: wire format, provider auth,
error classes, lost replies, and many sender threads sharing one token and connection."""

from __future__ import annotations

import json
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from channels import ErrorClass, OutgoingMessage
from channels.apns import ApnsAdapter, apns_id
from channels.breaker import GuardedAdapter
from channels.console import ConsoleAdapter
from channels.errors import ConfigurationError
from channels.fcm import FcmAdapter
from hub import transports
from hub.delivery import maybe_delivered
from hub.settings import Settings
from tests.fakes.apns import FakeApns, Scripted
from tests.fakes.fcm import FakeFcm

FCM_TOKEN = "fXk3:APA91bH" + "x" * 140
IOS_TOKEN = "a1" * 32
TOPIC = "pl.parcelhub.app"


def app_push(token: str, key: str = "evt-1:app_push", *, urgent: bool = False,
             platform: str = "android", **meta: object) -> OutgoingMessage:
    metadata = {"platform": platform, "app_id": TOPIC, "collapse_key": "parcel:PL0001234567",
                "urgent": urgent, "ttl_seconds": 3600, "category": "transactional",
                "data": {"event_type": "parcel.ready_for_pickup",
                         "tracking_number": "PL0001234567"}, **meta}
    parts = {"title": "Paczka czeka", "body": "Odbierz PL0001234567 w WAW123M. Zażółć!",
             "url": "https://track.example/PL0001234567"}
    return OutgoingMessage(key, "app_push", token, parts, "pl", metadata)


@pytest.fixture(scope="module")
def fcm_server():
    with FakeFcm() as fake:  # one RSA key and server for the module: both are slow to make
        yield fake


@pytest.fixture
def fake_fcm(fcm_server):
    fcm_server.reset()
    return fcm_server


@pytest.fixture
def fake_apns(tmp_path, monkeypatch):
    with FakeApns(tmp_path) as fake:
        monkeypatch.setenv("SSL_CERT_FILE", str(fake.cert))  # trust its throwaway certificate
        yield fake


def fcm(fake: FakeFcm, tmp_path: Path, timeout: float = 5.0) -> FcmAdapter:
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps(fake.service_account_info()))
    return FcmAdapter.from_service_account_file(str(path), fake.url, timeout=timeout)


def apns(fake: FakeApns, tmp_path: Path, timeout: float = 5.0, **kwargs) -> ApnsAdapter:
    path = tmp_path / "AuthKey.p8"
    path.write_bytes(fake.p8())
    adapter = ApnsAdapter.from_key_file(str(path), fake.key_id, fake.team_id, fake.url,
                                        timeout=timeout)
    for name, value in kwargs.items():
        setattr(adapter, name, value)
    return adapter


def closed_url() -> str:
    """A loopback port nobody listens on: the connect is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


# --- FCM HTTP v1 ---

def test_fcm_message_format_collapse_and_priority(fake_fcm, tmp_path):
    adapter = fcm(fake_fcm, tmp_path)
    urgent = adapter.send(app_push(FCM_TOKEN, "evt-1:app_push", urgent=True,
                                   ttl_seconds=90 * 86400))
    calm = adapter.send(app_push(FCM_TOKEN, "evt-2:app_push"))
    assert urgent.ok and calm.ok, fake_fcm.rejections
    assert urgent.provider_message_id.startswith(f"projects/{fake_fcm.project_id}/messages/")
    first, second = (m["body"]["message"] for m in fake_fcm.messages)
    assert first["token"] == FCM_TOKEN
    assert first["notification"] == {"title": "Paczka czeka",
                                     "body": "Odbierz PL0001234567 w WAW123M. Zażółć!"}
    assert first["data"] == {"event_type": "parcel.ready_for_pickup",
                             "tracking_number": "PL0001234567", "hub_key": "evt-1:app_push",
                             "url": "https://track.example/PL0001234567",
                             "category": "transactional"}
    assert first["android"] == {
        "priority": "HIGH", "ttl": f"{28 * 86400}s", "restricted_package_name": TOPIC,
        "collapse_key": "parcel:PL0001234567",
        "notification": {"channel_id": "transactional", "tag": "parcel:PL0001234567"}}
    assert second["android"]["priority"] == "NORMAL" and second["android"]["ttl"] == "3600s"
    assert second["android"]["collapse_key"] == first["android"]["collapse_key"]
    assert fake_fcm.token_requests == 1
    assert fake_fcm.messages[0]["headers"]["authorization"].startswith("Bearer ya29.")


def test_fcm_for_an_ios_app_on_firebase_carries_apns_headers(fake_fcm, tmp_path):
    """An iOS app registered through Firebase: FCM passes priority, collapse and expiry on
    to APNs (`apns.headers`); Android-only fields are left out."""
    adapter = fcm(fake_fcm, tmp_path)
    assert adapter.send(app_push(FCM_TOKEN, "evt-1:app_push", urgent=True, platform="ios")).ok
    assert adapter.send(app_push(FCM_TOKEN, "evt-2:app_push", platform="ios")).ok, \
        fake_fcm.rejections
    urgent, calm = (m["body"]["message"] for m in fake_fcm.messages)
    assert "android" not in urgent
    headers = urgent["apns"]["headers"]
    assert headers["apns-priority"] == "10" and calm["apns"]["headers"]["apns-priority"] == "5"
    assert headers["apns-collapse-id"] == "parcel:PL0001234567"
    assert 3500 < int(headers["apns-expiration"]) - time.time() <= 3600
    assert urgent["apns"]["payload"]["aps"] == {"thread-id": "parcel:PL0001234567",
                                                "sound": "default"}
    assert calm["apns"]["payload"]["aps"] == {"thread-id": "parcel:PL0001234567"}


def send_from_threads(adapter, keys: range, **meta: object) -> None:
    token = IOS_TOKEN if meta.get("platform") == "ios" else FCM_TOKEN
    with ThreadPoolExecutor(64) as pool:
        results = list(pool.map(lambda i: adapter.send(app_push(token, f"e{i}", **meta)), keys))
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]


def test_fcm_access_token_shared_by_threads_and_refreshed(fake_fcm, tmp_path):
    adapter = fcm(fake_fcm, tmp_path)
    send_from_threads(adapter, range(64))
    assert len(fake_fcm.messages) == 64 and fake_fcm.token_requests == 1
    # revoked early: the threads' 401s cause one refresh; each refused message is sent again
    fake_fcm.revoke_tokens()
    send_from_threads(adapter, range(64, 128))
    assert fake_fcm.token_requests == 2 and len(fake_fcm.messages) == 128
    assert {m["body"]["message"]["data"]["hub_key"] for m in fake_fcm.messages} == {
        f"e{i}" for i in range(128)}
    fake_fcm.expires_in = 226  # google-auth treats the last 225 s as stale: ~1 s of life
    fake_fcm.revoke_tokens()
    assert adapter.send(app_push(FCM_TOKEN, "short-lived")).ok
    time.sleep(1.2)  # now inside the refresh margin: a new token before sending
    assert adapter.send(app_push(FCM_TOKEN, "after-expiry")).ok
    assert fake_fcm.token_requests == 4


@pytest.mark.parametrize(("status", "code", "headers", "error_class", "deactivate", "retry"), [
    (404, "UNREGISTERED", {}, ErrorClass.PERMANENT, True, None),
    (403, "SENDER_ID_MISMATCH", {}, ErrorClass.PERMANENT, True, None),
    (429, "QUOTA_EXCEEDED", {"Retry-After": "30"}, ErrorClass.TRANSIENT, False, 30.0),
    (429, "QUOTA_EXCEEDED", {}, ErrorClass.TRANSIENT, False, 60.0),
    (503, "UNAVAILABLE", {"Retry-After": "5"}, ErrorClass.TRANSIENT, False, 5.0),
    (500, "INTERNAL", {}, ErrorClass.TRANSIENT, False, None),
    (401, "THIRD_PARTY_AUTH_ERROR", {}, ErrorClass.TRANSIENT, False, None),
])
def test_fcm_error_table(fake_fcm, tmp_path, status, code, headers, error_class, deactivate,
                         retry):
    fake_fcm.script(FCM_TOKEN, status, code, headers)
    result = fcm(fake_fcm, tmp_path).send(app_push(FCM_TOKEN))
    assert (result.error_class, result.deactivate, result.retry_after) == (
        error_class, deactivate, retry)
    assert result.error == f"fcm {status} {code}"  # never FCM's message (it may echo tokens)


def test_fcm_unregistered_and_invalid_argument_from_the_fake(fake_fcm, tmp_path):
    adapter = fcm(fake_fcm, tmp_path)
    fake_fcm.unregistered.add(FCM_TOKEN)
    gone = adapter.send(app_push(FCM_TOKEN))
    assert gone.error_class is ErrorClass.PERMANENT and gone.deactivate
    reserved = adapter.send(app_push("other-token", data={"from": "x"}))  # FCM's own key
    assert reserved.error == "fcm 400 INVALID_ARGUMENT" and not reserved.deactivate
    fake_fcm.malformed.add("not-a-token")  # FCM names message.token: the token is dead
    malformed = adapter.send(app_push("not-a-token"))
    assert malformed.error_class is ErrorClass.PERMANENT and malformed.deactivate
    assert malformed.error == "fcm 400 INVALID_ARGUMENT (message.token)"


def test_fcm_lost_reply_is_unknown_but_refused_connect_and_bad_credentials_are_not(
        fake_fcm, tmp_path):
    adapter = fcm(fake_fcm, tmp_path, timeout=1.0)
    assert adapter.send(app_push("warm-up")).ok
    fake_fcm.script(FCM_TOKEN, 200, hang=2.5)
    lost = adapter.send(app_push(FCM_TOKEN))
    assert lost.error_class is ErrorClass.TRANSIENT and maybe_delivered(lost)  # → unconfirmed
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "wrong.json"  # signed by a key Google does not know: refused
    path.write_text(json.dumps(fake_fcm.service_account_info(other_key)))
    refused = FcmAdapter.from_service_account_file(str(path), fake_fcm.url).send(app_push("t"))
    assert refused.error_class is ErrorClass.TRANSIENT and not maybe_delivered(refused)
    down = FcmAdapter(adapter.credentials, "p", adapter.client, closed_url())
    result = down.send(app_push("t2"))
    assert result.error_class is ErrorClass.TRANSIENT and not maybe_delivered(result)


# --- APNs over HTTP/2 ---

def test_apns_headers_and_payload(fake_apns, tmp_path):
    adapter = apns(fake_apns, tmp_path)
    before = int(time.time())
    urgent = adapter.send(app_push(IOS_TOKEN, "evt-1:app_push", urgent=True, platform="ios"))
    calm = adapter.send(app_push(IOS_TOKEN, "evt-2:app_push", platform="ios",
                                 collapse_key="parcel:" + "9" * 80, ttl_seconds=0,
                                 category="marketing"))
    assert urgent.ok and calm.ok, fake_apns.rejections
    assert urgent.provider_message_id == apns_id("evt-1:app_push")
    assert uuid.UUID(urgent.provider_message_id) == uuid.UUID(apns_id("evt-1:app_push"))
    first, second = fake_apns.pushed
    assert first.token == IOS_TOKEN
    h = first.headers
    assert (h["apns-topic"], h["apns-push-type"], h["apns-priority"]) == (TOPIC, "alert", "10")
    assert h["apns-collapse-id"] == "parcel:PL0001234567"
    assert before + 3600 <= int(h["apns-expiration"]) <= int(time.time()) + 3600
    assert h["apns-id"] == apns_id("evt-1:app_push")
    assert first.payload == {
        "aps": {"alert": {"title": "Paczka czeka",
                          "body": "Odbierz PL0001234567 w WAW123M. Zażółć!"},
                "sound": "default", "interruption-level": "time-sensitive",
                "thread-id": "parcel:PL0001234567"},
        "event_type": "parcel.ready_for_pickup", "tracking_number": "PL0001234567",
        "hub_key": "evt-1:app_push", "url": "https://track.example/PL0001234567",
        "category": "transactional"}
    assert second.headers["apns-priority"] == "5" and second.headers["apns-expiration"] == "0"
    assert len(second.headers["apns-collapse-id"]) == 64  # hashed: longer than APNs allows
    assert "sound" not in second.payload["aps"] and second.payload["category"] == "marketing"


@pytest.mark.parametrize(("setup", "error_class", "deactivate", "retry"), [
    (lambda f: f.unregistered.add(IOS_TOKEN), ErrorClass.PERMANENT, True, None),
    (lambda f: f.topics.clear(), ErrorClass.PERMANENT, True, None),  # NotForTopic
    (lambda f: f.scripted.update({IOS_TOKEN: Scripted(400, "BadDeviceToken")}),
     ErrorClass.PERMANENT, True, None),
    (lambda f: f.scripted.update({IOS_TOKEN: Scripted(400, "BadTopic")}),
     ErrorClass.PERMANENT, False, None),
    (lambda f: f.scripted.update({IOS_TOKEN: Scripted(429, "TooManyRequests",
                                                      {"retry-after": "20"})}),
     ErrorClass.TRANSIENT, False, 20.0),
    (lambda f: f.scripted.update({IOS_TOKEN: Scripted(503, "ServiceUnavailable")}),
     ErrorClass.TRANSIENT, False, None),
])
def test_apns_error_table(fake_apns, tmp_path, setup, error_class, deactivate, retry):
    setup(fake_apns)
    result = apns(fake_apns, tmp_path).send(app_push(IOS_TOKEN, platform="ios"))
    assert (result.error_class, result.deactivate, result.retry_after) == (
        error_class, deactivate, retry)
    assert len(fake_apns.rejections) == 1 and fake_apns.pushed == []
    assert result.error.endswith(fake_apns.rejections[0])  # the reason, never the token


def test_apns_refuses_bad_tokens_and_big_payloads_before_sending(fake_apns, tmp_path):
    adapter = apns(fake_apns, tmp_path)
    bad = adapter.send(app_push("../../3/device/" + IOS_TOKEN, platform="ios"))
    assert bad.error_class is ErrorClass.PERMANENT and bad.deactivate
    big = adapter.send(app_push(IOS_TOKEN, platform="ios", data={"blob": "x" * 4000}))
    assert big.error_class is ErrorClass.PERMANENT and not big.deactivate
    assert "PayloadTooLarge" in big.error
    assert fake_apns.pushed == [] and fake_apns.rejections == [] and fake_apns.connections == 0


def test_apns_provider_token_cached_50_minutes_and_renewed_once_when_expired(
        fake_apns, tmp_path):
    now = [time.time()]
    adapter = apns(fake_apns, tmp_path, clock=lambda: now[0])
    first = adapter.provider_token()
    now[0] += 49 * 60
    assert adapter.provider_token() == first
    now[0] += 2 * 60
    assert adapter.provider_token() != first
    adapter = apns(fake_apns, tmp_path)
    assert adapter.send(app_push(IOS_TOKEN, "a", platform="ios")).ok
    fake_apns.expire_seen_tokens()
    assert adapter.send(app_push(IOS_TOKEN, "b", platform="ios")).ok  # renewed, resent
    assert fake_apns.rejections == ["ExpiredProviderToken"] and len(fake_apns.pushed) == 2
    stale = apns(fake_apns, tmp_path, clock=lambda: time.time() - 2 * 3600)
    late = stale.send(app_push(IOS_TOKEN, "c", platform="ios"))  # still stale after renewal
    assert late.error == "apns 403 ExpiredProviderToken" and not maybe_delivered(late)


def test_apns_64_threads_share_one_connection_and_one_token(fake_apns, tmp_path):
    adapter = apns(fake_apns, tmp_path)
    send_from_threads(adapter, range(64), platform="ios")
    assert len({p.headers["apns-id"] for p in fake_apns.pushed}) == 64
    assert fake_apns.connections == 1 and len(fake_apns.provider_tokens) == 1
    fake_apns.expire_seen_tokens()  # every thread is refused: still only one new JWT
    send_from_threads(adapter, range(64, 128), platform="ios")
    assert len(fake_apns.pushed) == 128 and len(fake_apns.provider_tokens) == 2
    assert fake_apns.connections == 1


def test_apns_lost_reply_is_unknown_refused_connect_is_not(fake_apns, tmp_path):
    adapter = apns(fake_apns, tmp_path, timeout=1.0)
    fake_apns.scripted[IOS_TOKEN] = Scripted(200, delay=2.5)
    lost = adapter.send(app_push(IOS_TOKEN, platform="ios"))
    assert lost.error_class is ErrorClass.TRANSIENT and maybe_delivered(lost)
    other = "b2" * 32
    assert adapter.send(app_push(other, "next", platform="ios")).ok  # the connection lives on
    down = apns(fake_apns, tmp_path, base_url=closed_url()).send(app_push(other, platform="ios"))
    assert down.error_class is ErrorClass.TRANSIENT and not maybe_delivered(down)


# --- wiring ---

def test_transports_console_until_configured_then_guarded_adapters(fake_fcm, fake_apns,
                                                                   tmp_path):
    base = {"console_outbox_path": str(tmp_path / "outbox.jsonl")}
    bare = transports.build(Settings(**base))
    assert isinstance(bare["fcm"], ConsoleAdapter) and isinstance(bare["apns"], ConsoleAdapter)
    account, key = tmp_path / "sa.json", tmp_path / "AuthKey.p8"
    account.write_text(json.dumps(fake_fcm.service_account_info()))
    key.write_bytes(fake_apns.p8())
    built = transports.build(Settings(
        **base, fcm_service_account_file=str(account), fcm_api_base_url=fake_fcm.url,
        apns_key_file=str(key), apns_key_id=fake_apns.key_id, apns_team_id=fake_apns.team_id,
        apns_base_url=fake_apns.url))
    assert isinstance(built["fcm"], GuardedAdapter) and built["fcm"].name == "fcm"
    assert isinstance(built["apns"], GuardedAdapter) and built["apns"].name == "apns"
    assert built["fcm"].send(app_push(FCM_TOKEN)).ok
    assert built["apns"].send(app_push(IOS_TOKEN, platform="ios")).ok
    key.write_text("not a key")
    with pytest.raises(ConfigurationError, match="HUB_APNS_KEY_FILE"):
        transports.build(Settings(**base, apns_key_file=str(key), apns_key_id="K",
                                  apns_team_id="T"))
