"""The Twilio SDK client as the hub configures it: environment proxy settings are read once
(requests re-read them on every request, about a millisecond of CPU each) and still
honoured, and the connection pool holds as many connections as calls in flight."""

from __future__ import annotations

import pytest

from channels.twilio_sms import make_client


def test_a_proxy_from_the_environment_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.carrier.internal:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    http = make_client("AC" + "0" * 32, "token").http_client
    assert http.proxy.get("https") == "http://proxy.carrier.internal:3128"
    assert http.session.trust_env is False  # not looked up again per request


def test_no_proxy_for_the_api_host_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.carrier.internal:3128")
    monkeypatch.setenv("NO_PROXY", "api.twilio.com")
    assert make_client("AC" + "0" * 32, "token").http_client.proxy == {}


def test_a_ca_bundle_from_the_environment_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/carrier-ca.pem")
    assert make_client("AC" + "0" * 32, "token").http_client.session.verify == \
        "/etc/ssl/carrier-ca.pem"


def test_the_pool_keeps_a_connection_per_call_in_flight() -> None:
    http = make_client("AC" + "0" * 32, "token", connections=64).http_client
    for scheme in ("https://", "http://"):
        assert http.session.get_adapter(scheme + "api.twilio.com")._pool_maxsize == 64
