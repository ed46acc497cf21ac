"""Events through the whole hub to the provider fakes: content, fallback, outages, retries."""

from __future__ import annotations

import time

from sqlalchemy import select

from channels.webpush import generate_vapid_keys
from hub.customers import get_customer, save_push_subscription
from hub.models import ChannelSuppression, Customer, OutboxJob, PushSubscriptionRow
from tests.channels.conftest import sendgrid_settings, twilio_settings
from tests.helpers import event

PUSH_ONLY = {"id": "c-push", "name": "Jan", "locale": "pl"}


def test_sms_rendered_by_the_pipeline_reaches_twilio(make_hub, fake_twilio):
    hub = make_hub(**twilio_settings(fake_twilio))
    hub.post(event("evt-sms"))
    hub.run_until_idle()
    (sent,) = fake_twilio.messages
    assert sent["to"] == "+48512345678"
    assert "Paczkomat WAW123M" in sent["body"] and "482913" in sent["body"]
    assert sent["status_callback"].startswith("https://hub.example/v1/webhooks/twilio/status?key=")
    view = hub.event_view("evt-sms")
    assert [n["status"] for n in view["notifications"]] == ["sent"]
    assert view["notifications"][0]["provider_message_id"] == sent["sid"]


def test_email_through_sendgrid_when_keyed(make_hub, fake_sendgrid):
    hub = make_hub(**sendgrid_settings(fake_sendgrid))
    body = event("evt-mail")
    del body["customer"]["phone"]
    hub.post(body)
    hub.run_until_idle()
    (mail,) = fake_sendgrid.mails
    sent = mail["body"]
    assert sent["subject"].startswith("Przesyłka PL0001234567")
    assert sent["personalizations"][0]["to"] == [{"email": "anna.kowalska@example.pl"}]
    assert sent["custom_args"]["event_type"] == "parcel.ready_for_pickup"
    assert set(sent["categories"]) == {"parcel.ready_for_pickup", "transactional"}


def test_emailed_one_click_unsubscribe_link_works_on_this_hub(make_hub, fake_sendgrid):
    """The List-Unsubscribe header the pipeline puts on an e-mail is the hub's own signed
    link: a mail client's RFC 8058 POST to it is accepted by this same hub."""
    hub = make_hub(**sendgrid_settings(fake_sendgrid))
    body = event("evt-mail")
    del body["customer"]["phone"]
    hub.post(body)
    hub.run_until_idle()
    (mail,) = fake_sendgrid.mails
    headers = mail["body"]["headers"]
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = headers["List-Unsubscribe"].split(",")[0].strip("<> ")
    assert url.startswith("https://hub.example/u/")
    reply = hub.client.post(url.removeprefix("https://hub.example"),
                            data={"List-Unsubscribe": "One-Click"})
    assert reply.status_code == 200, reply.text


def test_email_through_smtp_when_url_set(make_hub, fake_smtp, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(fake_smtp.cert))  # trust the relay's own cert
    hub = make_hub(smtp_url=fake_smtp.url(), email_from="Parcel Hub <no-reply@hub.example>")
    body = event("evt-smtp")
    del body["customer"]["phone"]
    hub.post(body)
    hub.run_until_idle()
    ((envelope, mail, session),) = fake_smtp.messages
    assert session.authenticated and envelope.rcpt_tos == ["anna.kowalska@example.pl"]
    assert "Kod odbioru: 482913" in mail.get_body(("plain",)).get_content()


def test_console_stays_the_default(make_hub, tmp_path):
    hub = make_hub()
    hub.post(event("evt-console"))
    hub.run_until_idle()
    (line,) = (tmp_path / "outbox.jsonl").read_text("utf-8").splitlines()
    assert '"channel": "sms"' in line and "482913" in line
    assert hub.event_view("evt-console")["notifications"][0]["status"] == "sent"


def _push_hub(make_hub, fake_push, **more):
    private, public = generate_vapid_keys()
    hub = make_hub(vapid_private_key=private, push_allowed_hosts=[fake_push.url], **more)
    reply = hub.client.get("/v1/push/vapid-public-key")
    assert reply.status_code == 200 and reply.json()["public_key"] == public
    return hub, public


def _register(hub, fake_push, public, customer="c-push"):
    """Stores a subscription like POST /v1/customers/{id}/push-subscriptions does (that API
    takes https endpoints only; the fake listens on plain http)."""
    subscription = fake_push.subscribe(public)
    with hub.runtime.db.transaction() as session:
        row = get_customer(session, "default", customer)
        if row is None:
            row = Customer(external_id=customer, preferences={})
            session.add(row)
            session.flush()
        keys = subscription["keys"]
        save_push_subscription(session, row, subscription["endpoint"], keys["p256dh"], keys["auth"])
    return subscription


def test_push_fake_decrypts_polish_text(make_hub, fake_push):
    hub, public = _push_hub(make_hub, fake_push)
    _register(hub, fake_push, public)
    hub.post(event("evt-push", customer=PUSH_ONLY))
    hub.run_until_idle()
    (delivered,) = fake_push.delivered
    assert delivered.payload["title"] == "Przesyłka czeka na odbiór"  # decrypted, diacritics intact
    assert delivered.payload["body"].startswith("Paczkomat WAW123M, kod 482913. Termin: ")
    assert delivered.headers["urgency"] == "high"  # ready_for_pickup is urgent
    assert delivered.payload["url"] == "https://track.example.pl/PL0001234567"


def test_push_410_deactivates_and_next_event_falls_back(make_hub, fake_push, fake_sendgrid):
    hub, public = _push_hub(make_hub, fake_push, **sendgrid_settings(fake_sendgrid))
    customer = {"id": "c-both", "email": "jan@example.pl", "locale": "pl"}
    hub.post(event("evt-0", type_="parcel.in_transit", customer=customer))
    hub.run_until_idle()
    hub.set_channels("c-both", "transactional", ["push", "email"])
    fake_sendgrid.mails.clear()
    subscription = _register(hub, fake_push, public, "c-both")
    fake_push.unsubscribe(subscription)  # the browser dropped it: the service answers 410

    hub.post(event("evt-1", customer=customer))
    hub.run_until_idle()
    first = {d["channel"]: d for d in hub.event_view("evt-1")["decisions"]}
    assert first["push"]["outcome"] == "failed" and first["push"]["reason"] == "provider_permanent"
    assert first["email"]["outcome"] == "sent"  # fallback within the same event
    with hub.runtime.db.sessions() as session:
        (row,) = session.scalars(select(PushSubscriptionRow)).all()
        assert not row.active and "410" in row.deactivated_reason

    hub.post(event("evt-2", type_="parcel.out_for_delivery", customer=customer))
    hub.run_until_idle()
    second = {d["channel"]: d for d in hub.event_view("evt-2")["decisions"]}
    assert second["push"]["outcome"] == "skipped" and second["push"]["reason"] == "no_address"
    assert second["email"]["outcome"] == "sent"
    assert len(fake_sendgrid.mails) == 2 and len(fake_push.delivered) == 0


def test_permanent_sms_failure_falls_back_and_suppresses_number(make_hub, fake_twilio, fake_sendgrid):
    hub = make_hub(**twilio_settings(fake_twilio), **sendgrid_settings(fake_sendgrid))
    fake_twilio.invalid.add("+48512345678")
    hub.post(event("evt-bad"))
    hub.run_until_idle()
    decisions = {d["channel"]: d for d in hub.event_view("evt-bad")["decisions"]}
    assert decisions["sms"]["outcome"] == "failed" and "21211" in decisions["sms"]["detail"]
    assert decisions["email"]["outcome"] == "sent"
    hub.post(event("evt-next", type_="parcel.out_for_delivery"))
    hub.run_until_idle()
    after = {d["channel"]: d for d in hub.event_view("evt-next")["decisions"]}
    assert after["sms"]["reason"] == "no_address" and after["email"]["outcome"] == "sent"
    assert len(fake_twilio.messages) == 0


def test_429_retry_after_is_honoured(make_hub, fake_twilio):
    hub = make_hub(**twilio_settings(fake_twilio))
    fake_twilio.faults.next(status=429, headers={"Retry-After": "2"})
    hub.post(event("evt-429"))
    started = time.time()
    hub.worker.run_once()
    with hub.runtime.db.sessions() as session:
        job = session.scalars(select(OutboxJob)).one()
        wait = job.not_before.timestamp() - started
    assert job.state == "pending" and 1.8 <= wait <= 3.0  # backoff alone would be ≤ 0.05 s
    hub.worker.run_once()
    assert not fake_twilio.messages  # not before Retry-After
    hub.run_until_idle(timeout=10)
    assert len(fake_twilio.messages) == 1 and time.time() - started >= 2


def _outage(make_hub, fake_twilio, seconds: float, count: int = 12):
    hub = make_hub(
        **twilio_settings(fake_twilio),
        breaker_threshold=3,
        breaker_cooldown_seconds=0.3,
        breaker_max_cooldown_seconds=2.0,
        max_attempts=25,
    )
    fake_twilio.faults.for_seconds(seconds, status=500)
    for i in range(count):
        body = event(f"evt-out-{i}")
        body["parcel"] = {**body["parcel"], "tracking_number": f"PL{i:010d}"}
        hub.post(body)
    hub.run_until_idle(timeout=seconds + 30)
    assert fake_twilio.faults.injected >= 3
    keys = list(fake_twilio.by_key)
    assert len(keys) == count and set(fake_twilio.by_key.values()) == {1}  # once, none twice
    with hub.runtime.db.sessions() as session:
        jobs = session.scalars(select(OutboxJob)).all()
        assert {j.state for j in jobs} == {"done"}
        # the breaker deferred most jobs instead of letting them fail
        assert sum(j.attempts for j in jobs) < count + fake_twilio.faults.injected + count
    return hub


def test_provider_outage_then_recovery_delivers_each_once(make_hub, fake_twilio):
    _outage(make_hub, fake_twilio, seconds=3.0)


def test_open_circuit_defers_without_spending_attempts(make_hub, fake_twilio):
    hub = make_hub(**twilio_settings(fake_twilio), breaker_threshold=1, breaker_cooldown_seconds=60)
    fake_twilio.faults.next(status=503)
    hub.post(event("evt-a"))
    hub.worker.run_once()  # fails: opens the circuit
    hub.post(event("evt-b", type_="parcel.out_for_delivery"))
    hub.worker.run_once()
    with hub.runtime.db.sessions() as session:
        jobs = {j.id: j for j in session.scalars(select(OutboxJob)).all()}
    second = jobs[max(jobs)]
    assert second.state == "pending" and second.attempts == 0
    assert fake_twilio.requests == 1
    sms = next(d for d in hub.event_view("evt-b")["decisions"] if d["channel"] == "sms")
    assert sms["outcome"] == "deferred" and sms["reason"] == "circuit_open"


def test_max_age_dead_letters_and_alerts_ops(make_hub, fake_twilio, fake_json):
    hub = make_hub(
        **twilio_settings(fake_twilio),
        delivery_max_age_seconds=0,
        apprise_urls=[fake_json.apprise_url("ops")],
    )
    fake_twilio.faults.next(status=500)
    hub.post(event("evt-old"))
    hub.worker.run_once()
    decisions = hub.event_view("evt-old")["decisions"]
    assert decisions[-1]["reason"] == "max_age_exceeded"
    (alert,) = fake_json.received
    assert alert["body"]["title"] == "Parcel Hub: dead letter"


def test_provider_outage_alerts_ops_once(make_hub, fake_twilio, fake_json):
    hub = make_hub(
        **twilio_settings(fake_twilio),
        breaker_threshold=2,
        breaker_cooldown_seconds=60,
        apprise_urls=[fake_json.apprise_url("ops")],
    )
    fake_twilio.faults.for_seconds(60, status=502)
    for i in range(4):
        hub.post(event(f"evt-{i}", type_="parcel.in_transit" if i % 2 else "parcel.delivered"))
    hub.worker.run_once()  # these calls run concurrently: all may be in flight before it opens
    in_flight_then = fake_twilio.requests
    for i in range(4, 8):
        hub.post(event(f"evt-{i}", type_="parcel.in_transit" if i % 2 else "parcel.delivered"))
    hub.worker.run_once()
    outage = [r for r in fake_json.received if "outage" in r["body"]["title"]]
    assert len(outage) == 1 and "twilio" in outage[0]["body"]["message"]
    assert 2 <= in_flight_then <= 4
    assert fake_twilio.requests == in_flight_then  # later ones deferred, not sent into it


def test_outage_recovery_on_each_store(make_hub, fake_twilio, database_url):
    """The same once-and-only-once outcome on SQLite and on the real PostgreSQL."""
    hub = make_hub(
        database_url=database_url,
        **twilio_settings(fake_twilio),
        breaker_threshold=2,
        breaker_cooldown_seconds=0.2,
        breaker_max_cooldown_seconds=0.5,
        max_attempts=25,
    )
    fake_twilio.faults.for_seconds(1.5, status=500)
    for i in range(6):
        hub.post(event(f"evt-pg-{i}", parcel={**event()["parcel"], "tracking_number": f"PX{i:08d}"}))
    hub.run_until_idle(timeout=30)
    assert len(fake_twilio.by_key) == 6 and set(fake_twilio.by_key.values()) == {1}


def test_twilio_21610_is_a_consent_withdrawal(make_hub, fake_twilio, fake_sendgrid):
    hub = make_hub(**twilio_settings(fake_twilio), **sendgrid_settings(fake_sendgrid))
    fake_twilio.stopped.add("+48512345678")
    hub.post(event("evt-stopped"))
    hub.run_until_idle()
    with hub.runtime.db.sessions() as session:
        (sup,) = session.scalars(select(ChannelSuppression)).all()
        assert (sup.channel, sup.reason, sup.source) == ("sms", "recipient_opt_out", "twilio")
    assert len(fake_sendgrid.mails) == 1  # fell back to e-mail
