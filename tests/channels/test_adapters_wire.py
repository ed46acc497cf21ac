"""Each adapter against its loopback fake: content, headers, auth, and error classes."""

from __future__ import annotations

import json

import pytest

from channels import ErrorClass, OutgoingMessage
from channels.apprise_notify import AppriseAdapter
from channels.sendgrid_email import SendGridEmailAdapter
from channels.sendgrid_email import make_client as sendgrid_client
from channels.smtp_email import SmtpEmailAdapter, SmtpSettings
from channels.twilio_sms import TwilioSmsAdapter
from channels.twilio_sms import make_client as twilio_client
from channels.webpush import WebPushAdapter, generate_vapid_keys, topic_for

POLISH = "Przesyłka PL0001234567 czeka w Paczkomacie WAW123M. Kod odbioru: 482913. Zażółć gęślą jaźń!"


def msg(channel: str, address: str, parts: dict[str, str], **meta: object) -> OutgoingMessage:
    return OutgoingMessage(
        "42:" + channel + ":abc",
        channel,
        address,
        parts,
        "pl",
        {"event_type": "parcel.ready_for_pickup", "tracking_number": "PL0001234567", **meta},
    )


def twilio(fake, callback: str | None = "https://hub.example/v1/webhooks/twilio/status"):
    client = twilio_client(fake.account_sid, fake.auth_token, fake.url, timeout=2)
    return TwilioSmsAdapter(client, "+48500000000", callback)


def test_twilio_sends_form_encoded_with_basic_auth(fake_twilio):
    result = twilio(fake_twilio).send(msg("sms", "+48512345678", {"body": POLISH}))
    assert result.ok and result.provider_message_id.startswith("SM")
    (sent,) = fake_twilio.messages
    assert sent["body"] == POLISH and sent["to"] == "+48512345678"
    assert sent["from"] == "+48500000000"
    assert sent["status_callback"] == ("https://hub.example/v1/webhooks/twilio/status?key=42%3Asms%3Aabc")


def test_twilio_messaging_service_sender(fake_twilio):
    client = twilio_client(fake_twilio.account_sid, fake_twilio.auth_token, fake_twilio.url)
    adapter = TwilioSmsAdapter(client, "MG" + "1" * 32)
    assert adapter.send(msg("sms", "+48512345678", {"body": "x"})).ok
    assert fake_twilio.messages[0]["messaging_service_sid"] == "MG" + "1" * 32


@pytest.mark.parametrize(
    ("setup", "error_class", "deactivate"),
    [
        (lambda f: f.invalid.add("+48512345678"), ErrorClass.PERMANENT, True),  # 21211
        (lambda f: f.stopped.add("+48512345678"), ErrorClass.PERMANENT, True),  # 21610
        (lambda f: f.faults.next(status=500), ErrorClass.TRANSIENT, False),
        (lambda f: f.faults.next(status=503), ErrorClass.TRANSIENT, False),
    ],
)
def test_twilio_error_table(fake_twilio, setup, error_class, deactivate):
    setup(fake_twilio)
    result = twilio(fake_twilio).send(msg("sms", "+48512345678", {"body": "x"}))
    assert result.error_class is error_class and result.deactivate is deactivate


def test_twilio_429_retry_after_and_bad_credentials(fake_twilio):
    fake_twilio.faults.next(status=429, headers={"Retry-After": "7"})
    result = twilio(fake_twilio).send(msg("sms", "+48512345678", {"body": "x"}))
    assert result.error_class is ErrorClass.TRANSIENT and result.retry_after == 7
    client = twilio_client(fake_twilio.account_sid, "wrong", fake_twilio.url)
    bad = TwilioSmsAdapter(client, "+48500000000").send(msg("sms", "+48512345678", {"body": "x"}))
    assert bad.error_class is ErrorClass.TRANSIENT and "20003" in bad.error


def test_twilio_timeout_is_transient(fake_twilio):
    fake_twilio.faults.next(status=500, hang=1.5)
    client = twilio_client(fake_twilio.account_sid, fake_twilio.auth_token, fake_twilio.url, timeout=0.5)
    result = TwilioSmsAdapter(client, "+48500000000").send(msg("sms", "+48512345678", {"body": "x"}))
    assert result.error_class is ErrorClass.TRANSIENT and "Timeout" in result.error


def sendgrid(fake):
    return SendGridEmailAdapter(sendgrid_client(fake.api_key, fake.url), "Parcel Hub <no-reply@hub.example>")


def test_sendgrid_mail_send_body(fake_sendgrid):
    message = msg(
        "email",
        "anna@example.pl",
        {"subject": "Paczka czeka", "text": POLISH, "html": f"<p>{POLISH}</p>"},
        category="transactional",
        unsubscribe_url="https://hub.example/u/tok",
        unsubscribe_mailto="u@hub.example",
    )
    result = sendgrid(fake_sendgrid).send(message)
    (mail,) = fake_sendgrid.mails
    assert result.ok and result.provider_message_id == mail["id"]
    body = mail["body"]
    assert mail["headers"]["authorization"] == "Bearer SG.fake-key"
    assert body["personalizations"][0]["to"] == [{"email": "anna@example.pl"}]
    assert body["from"] == {"email": "no-reply@hub.example", "name": "Parcel Hub"}
    assert body["content"] == [
        {"type": "text/plain", "value": POLISH},
        {"type": "text/html", "value": f"<p>{POLISH}</p>"},
    ]
    assert body["custom_args"]["idempotency_key"] == "42:email:abc"
    assert sorted(body["categories"]) == ["parcel.ready_for_pickup", "transactional"]
    assert body["headers"] == {
        "List-Unsubscribe": "<https://hub.example/u/tok>, <mailto:u@hub.example>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


@pytest.mark.parametrize(
    ("fault", "error_class", "retry_after"),
    [
        ({"status": 429, "headers": {"Retry-After": "3"}}, ErrorClass.TRANSIENT, 3.0),
        ({"status": 500}, ErrorClass.TRANSIENT, None),
        ({"status": 400, "body": {"errors": [{"message": "bad"}]}}, ErrorClass.PERMANENT, None),
    ],
)
def test_sendgrid_error_table(fake_sendgrid, fault, error_class, retry_after):
    fake_sendgrid.faults.next(**fault)
    result = sendgrid(fake_sendgrid).send(msg("email", "a@example.pl", {"subject": "s", "text": "t"}))
    assert result.error_class is error_class and result.retry_after == retry_after


def test_sendgrid_reconcile_by_custom_arg(fake_sendgrid):
    adapter = sendgrid(fake_sendgrid)
    assert adapter.reconcile("42:email:abc") is None
    sent = adapter.send(msg("email", "a@example.pl", {"subject": "s", "text": "t"}))
    found = adapter.reconcile("42:email:abc")
    assert found is not None and found.provider_message_id == sent.provider_message_id


def test_smtp_multipart_over_starttls_with_auth(fake_smtp):
    adapter = SmtpEmailAdapter(
        SmtpSettings.from_url(fake_smtp.url()),
        "Parcel Hub <no-reply@hub.example>",
        tls_context=fake_smtp.client_context(),
    )
    message = msg(
        "email",
        "anna@example.pl",
        {"subject": "Paczka czeka – odbiór", "text": POLISH, "html": f"<p>{POLISH}</p>"},
        unsubscribe_url="https://hub.example/u/tok",
    )
    result = adapter.send(message)
    assert result.ok, result.error
    ((envelope, mail, session),) = fake_smtp.messages
    assert session.authenticated and envelope.rcpt_tos == ["anna@example.pl"]
    assert mail.get_content_type() == "multipart/alternative"
    assert mail["Subject"] == "Paczka czeka – odbiór"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail["X-Hub-Notification"] == "42:email:abc"
    text, html = mail.get_payload()
    assert text.get_content().strip() == POLISH and POLISH in html.get_content()


def test_smtp_errors(fake_smtp):
    adapter = SmtpEmailAdapter(
        SmtpSettings.from_url(fake_smtp.url()),
        "hub@hub.example",
        tls_context=fake_smtp.client_context(),
    )
    fake_smtp.unknown.add("ghost@example.pl")
    gone = adapter.send(msg("email", "ghost@example.pl", {"subject": "s", "text": "t"}))
    assert gone.error_class is ErrorClass.PERMANENT and gone.deactivate
    fake_smtp.fail_next = 1
    later = adapter.send(msg("email", "a@example.pl", {"subject": "s", "text": "t"}))
    assert later.error_class is ErrorClass.TRANSIENT and "451" in later.error
    wrong = SmtpEmailAdapter(
        SmtpSettings.from_url(fake_smtp.url().replace("s3cret", "nope")),
        "hub@hub.example",
        tls_context=fake_smtp.client_context(),
    )
    assert (
        wrong.send(msg("email", "a@example.pl", {"subject": "s", "text": "t"})).error_class
        is ErrorClass.TRANSIENT
    )


def test_smtp_url_parsing():
    s = SmtpSettings.from_url("smtps://u%40x:p@mail.example")
    assert (s.host, s.port, s.tls, s.username) == ("mail.example", 465, "implicit", "u@x")
    assert SmtpSettings.from_url("smtp://relay:25").tls == "none"
    assert SmtpSettings.from_url("smtp://relay").tls == "starttls"


def webpush(fake_push):
    private, public = generate_vapid_keys()
    # the fake listens on plain http on loopback: admitted only because it is listed
    return WebPushAdapter(private, "mailto:ops@hub.example", ttl=3600,
                          allowed_hosts=[fake_push.url]), public


def test_webpush_vapid_and_decrypted_polish_text(fake_push):
    adapter, public = webpush(fake_push)
    subscription = fake_push.subscribe(public)
    result = adapter.send(
        msg("push", json.dumps(subscription), {"title": "Paczka czeka", "body": POLISH}, urgent=True)
    )
    assert result.ok, (result.error, fake_push.rejections)
    (delivered,) = fake_push.delivered
    assert delivered.payload["body"] == POLISH and delivered.payload["title"] == "Paczka czeka"
    assert delivered.headers["ttl"] == "3600" and delivered.headers["urgency"] == "high"
    assert delivered.headers["topic"] == topic_for("PL0001234567")
    assert len(delivered.headers["topic"]) <= 32


def test_webpush_gone_subscription_deactivates(fake_push):
    adapter, public = webpush(fake_push)
    subscription = fake_push.subscribe(public)
    fake_push.unsubscribe(subscription)
    result = adapter.send(msg("push", json.dumps(subscription), {"title": "t", "body": "b"}))
    assert result.error_class is ErrorClass.PERMANENT and result.deactivate


def test_webpush_wrong_vapid_key_is_rejected(fake_push):
    adapter, _ = webpush(fake_push)
    _, other_public = generate_vapid_keys()
    subscription = fake_push.subscribe(other_public)
    result = adapter.send(msg("push", json.dumps(subscription), {"title": "t", "body": "b"}))
    assert not result.ok and fake_push.rejections == ["wrong key"]


def test_webpush_429_retry_after(fake_push):
    adapter, public = webpush(fake_push)
    subscription = fake_push.subscribe(public)
    fake_push.faults.next(status=429, headers={"Retry-After": "12"})
    result = adapter.send(msg("push", json.dumps(subscription), {"title": "t", "body": "b"}))
    assert result.error_class is ErrorClass.TRANSIENT and result.retry_after == 12


def test_apprise_json_and_logged_error_detail(fake_json):
    adapter = AppriseAdapter([fake_json.apprise_url()])
    assert adapter.send(msg("ops", "ops", {"title": "Paczka", "body": POLISH})).ok
    assert fake_json.received[0]["body"]["message"] == POLISH
    assert fake_json.received[0]["body"]["title"] == "Paczka"
    fake_json.faults.next(status=500)
    failed = adapter.send(msg("ops", "ops", {"title": "t", "body": "b"}))
    assert failed.error_class is ErrorClass.TRANSIENT
    assert "Failed to send JSON" in failed.error and "500" in failed.error
    fake_json.faults.next(status=404)
    gone = adapter.send(msg("ops", "ops", {"title": "t", "body": "b"}))
    assert gone.error_class is ErrorClass.PERMANENT
