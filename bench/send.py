"""Sends/s per channel adapter to its loopback fake, next to a bare loop doing the same request.

    python bench/send.py [--seconds 1.5]

For each provider: the adapter (message building, error table, result), the provider's SDK
called directly with a prebuilt request, and a bare httpx loop posting the same wire request
where one exists; ratios = adapter / each bare loop (target ≥ 0.8). "sdk" is smtplib for
SMTP and a plain append+fsync for the console file. Single thread, loopback
fakes from tests/fakes in this process (they share its CPU, equally for every loop).
"""

from __future__ import annotations

import argparse
import json
import smtplib
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import apprise  # noqa: E402
import httpx  # noqa: E402
import requests  # noqa: E402
from pywebpush import webpush  # noqa: E402

from channels import OutgoingMessage  # noqa: E402
from channels.apprise_notify import AppriseAdapter  # noqa: E402
from channels.console import ConsoleAdapter  # noqa: E402
from channels.sendgrid_email import SendGridEmailAdapter  # noqa: E402
from channels.sendgrid_email import make_client as sendgrid_client  # noqa: E402
from channels.smtp_email import SmtpEmailAdapter, SmtpSettings  # noqa: E402
from channels.twilio_sms import TwilioSmsAdapter  # noqa: E402
from channels.twilio_sms import make_client as twilio_client  # noqa: E402
from channels.webpush import WebPushAdapter, generate_vapid_keys  # noqa: E402
from tests.fakes.apprise_json import FakeJsonEndpoint  # noqa: E402
from tests.fakes.sendgrid import FakeSendGrid  # noqa: E402
from tests.fakes.smtp import FakeSmtpRelay  # noqa: E402
from tests.fakes.twilio import FakeTwilio  # noqa: E402
from tests.fakes.webpush import FakePushService  # noqa: E402

TEXT = "Przesyłka PL0001234567 czeka w Paczkomacie WAW123M. Kod odbioru: 482913."
META = {"event_type": "parcel.ready_for_pickup", "tracking_number": "PL0001234567",
        "category": "transactional", "urgent": True}


def compare(loops: dict[str, Callable[[int], object]], seconds: float, rounds: int = 3,
            ) -> dict[str, float]:
    """Calls/s of each loop, interleaved round by round (best round each), so that a
    neighbour's burst on this shared machine does not land on one loop only."""
    for fn in loops.values():
        for i in range(5):
            fn(-i - 1)  # warm-up: connections, caches
    best = dict.fromkeys(loops, 0.0)
    n = 0
    for _ in range(rounds):
        for name, fn in loops.items():
            count, started = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - started) < seconds / rounds:
                fn(n)
                count, n = count + 1, n + 1
            best[name] = max(best[name], count / elapsed)
    return best


def message(channel: str, address: str, parts: dict[str, str], i: int) -> OutgoingMessage:
    return OutgoingMessage(f"{i}:{channel}:bench", channel, address, parts, "pl", META)


def bench_twilio(seconds: float) -> dict[str, float]:
    with FakeTwilio() as fake:
        client = twilio_client(fake.account_sid, fake.auth_token, fake.url)
        adapter = TwilioSmsAdapter(client, "+48500000000")
        sdk = twilio_client(fake.account_sid, fake.auth_token, fake.url)
        url = f"{fake.url}/2010-04-01/Accounts/{fake.account_sid}/Messages.json"
        with httpx.Client(auth=(fake.account_sid, fake.auth_token)) as bare:
            return compare({
                "adapter": (lambda i: _ok(adapter.send(
                    message("sms", "+48512345678", {"body": TEXT}, i)))),
                "sdk": (lambda i: sdk.messages.create(
                    to="+48512345678", from_="+48500000000", body=TEXT)),
                "httpx": (lambda i: bare.post(url, data={
                    "To": "+48512345678", "From": "+48500000000", "Body": TEXT}
                ).raise_for_status()),
            }, seconds)


def bench_sendgrid(seconds: float) -> dict[str, float]:
    with FakeSendGrid() as fake:
        adapter = SendGridEmailAdapter(sendgrid_client(fake.api_key, fake.url),
                                       "Parcel Hub <no-reply@hub.example>")
        parts = {"subject": "Paczka czeka", "text": TEXT, "html": f"<p>{TEXT}</p>"}
        body = adapter.build(message("email", "anna@example.pl", parts, 0))
        sdk = sendgrid_client(fake.api_key, fake.url)
        headers = {"Authorization": f"Bearer {fake.api_key}"}
        with httpx.Client(headers=headers) as bare:
            return compare({
                "adapter": (lambda i: _ok(adapter.send(
                    message("email", "anna@example.pl", parts, i)))),
                "sdk": (lambda i: sdk.client.mail.send.post(request_body=body)),
                "httpx": (lambda i: bare.post(f"{fake.url}/v3/mail/send", json=body
                                                  ).raise_for_status()),
            }, seconds)


def bench_webpush(seconds: float) -> dict[str, float]:
    with FakePushService() as fake:
        private, public = generate_vapid_keys()
        subscription = fake.subscribe(public)
        adapter = WebPushAdapter(private, "mailto:ops@hub.example", ttl=3600,
                                 allowed_hosts=[fake.url])
        address = json.dumps(subscription)
        session = requests.Session()
        payload = json.dumps({"title": "Paczka", "body": TEXT}, ensure_ascii=False)
        return compare({
            "adapter": (lambda i: _ok(adapter.send(
                message("push", address, {"title": "Paczka", "body": TEXT}, i)))),
            "sdk": (lambda i: webpush(subscription, payload, vapid_private_key=private,
                                          vapid_claims={"sub": "mailto:ops@hub.example"},
                                          ttl=3600, requests_session=session)),
        }, seconds)


def bench_smtp(seconds: float) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-smtp-"))
    relay = FakeSmtpRelay(tmp).start()
    try:
        context = relay.client_context()
        adapter = SmtpEmailAdapter(SmtpSettings.from_url(relay.url()), "hub@hub.example",
                                   tls_context=context)
        parts = {"subject": "Paczka czeka", "text": TEXT, "html": f"<p>{TEXT}</p>"}
        mail = adapter.build(message("email", "anna@example.pl", parts, 0))

        def bare(_: int) -> None:
            with smtplib.SMTP("127.0.0.1", relay.port, timeout=10) as conn:
                conn.starttls(context=context)
                conn.login(relay.username, relay.password)
                conn.send_message(mail)

        return compare({
            "adapter": (lambda i: _ok(adapter.send(
                message("email", "anna@example.pl", parts, i)))),
            "smtplib": bare,
        }, seconds)
    finally:
        relay.stop()


def bench_apprise(seconds: float) -> dict[str, float]:
    with FakeJsonEndpoint() as fake:
        adapter = AppriseAdapter([fake.apprise_url()])
        sdk = apprise.Apprise()
        sdk.add(fake.apprise_url())
        body = {"version": "1.0", "title": "Paczka", "message": TEXT, "type": "info"}
        with httpx.Client() as bare:
            return compare({
                "adapter": (lambda i: _ok(adapter.send(
                    message("ops", "ops", {"title": "Paczka", "body": TEXT}, i)))),
                "sdk": (lambda i: sdk.notify(body=TEXT, title="Paczka")),
                "httpx": (lambda i: bare.post(f"{fake.url}/notify", json=body
                                                  ).raise_for_status()),
            }, seconds)


def bench_console(seconds: float) -> dict[str, float]:
    import os

    path = Path(tempfile.mkdtemp(prefix="bench-console-")) / "out.jsonl"
    adapter = ConsoleAdapter(path)
    line = json.dumps({"id": "x", "channel": "sms", "to": "+48512345678", "parts": {
        "body": TEXT}}, ensure_ascii=False) + "\n"

    def bare(_: int) -> None:
        with path.with_suffix(".bare").open("a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())

    return compare({
        "adapter": (lambda i: _ok(adapter.send(
            message("sms", "+48512345678", {"body": TEXT}, i)))),
        "file+fsync": bare,
    }, seconds)


def _ok(result: object) -> None:
    if not getattr(result, "ok", False):
        raise SystemExit(f"send failed: {getattr(result, 'error', result)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="per loop")
    parser.add_argument("--only", nargs="*", help="adapters to run")
    args = parser.parse_args()
    benches = {"twilio": bench_twilio, "sendgrid": bench_sendgrid, "webpush": bench_webpush,
               "smtp": bench_smtp, "apprise": bench_apprise, "console": bench_console}
    print(f"{'adapter':9} {'adapter/s':>9} {'sdk/s':>7} {'httpx/s':>7} {'vs sdk':>6} "
          f"{'vs httpx':>8}")
    for name, bench in benches.items():
        if args.only and name not in args.only:
            continue
        numbers = bench(args.seconds)
        own = numbers.pop("adapter")
        sdk = numbers.get("sdk") or numbers.get("smtplib") or numbers.get("file+fsync") or 0.0
        bare = numbers.get("httpx")
        print(f"{name:9} {own:>9,.0f} {sdk:>7,.0f} {f'{bare:,.0f}' if bare else '-':>7} "
              f"{own / sdk:>6.2f} {f'{own / bare:.2f}' if bare else '-':>8}", flush=True)

if __name__ == "__main__":
    main()
