"""`hub keys vapid` prints a usable key pair."""

from __future__ import annotations

from typer.testing import CliRunner

from channels.webpush import WebPushAdapter
from hub.cli import app


def test_hub_keys_vapid_generates_a_pair():
    result = CliRunner().invoke(app, ["keys", "vapid"])
    assert result.exit_code == 0
    lines = dict(line.split("=", 1) for line in result.output.split())
    adapter = WebPushAdapter(lines["HUB_VAPID_PRIVATE_KEY"], "mailto:ops@hub.example")
    assert adapter.public_key == lines["HUB_VAPID_PUBLIC_KEY"]
    assert len(lines["HUB_VAPID_PUBLIC_KEY"]) == 87  # 65-byte point, base64url unpadded
