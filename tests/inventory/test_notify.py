"""The channels: the digest email's two parts and the signed webhook, against real receivers."""

import hashlib
import hmac
from datetime import timedelta

import pytest
from django.core import mail

from inventory import notify, reminders
from inventory.models import NotificationLog, NotificationPolicy
from tests.inventory.test_reminders import NOW, make_cert
from tests.realservices import require
from tests.realservices.webhook import WebhookReceiver

SECRET = "hook-secret"


def item(**overrides) -> notify.Item:
    values = {
        "certificate_id": 7,
        "name": "<shop> & co",
        "project": "alpha",
        "domains": ["shop.example.test", "www.shop.example.test"],
        "not_after": NOW + timedelta(days=6),
        "days_left": 6,
        "deployed_count": 2,
        "url": "http://testserver/certificates/7/",
        "threshold": 7,
    }
    return notify.Item(**{**values, **overrides})


@pytest.fixture
def receiver():
    with require(WebhookReceiver) as server:
        yield server


@pytest.fixture
def hooked(project, receiver):
    policy = NotificationPolicy(project=project, email_enabled=False, webhook_url=receiver.url)
    policy.set_webhook_secret(SECRET)
    policy.save()
    return policy


def verify(request) -> bool:
    """What a receiver does: recompute the HMAC over timestamp + "." + body."""
    timestamp = request.headers[notify.TIMESTAMP_HEADER]
    expected = hmac.new(
        SECRET.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(request.headers[notify.SIGNATURE_HEADER], f"sha256={expected}")


def test_the_email_has_a_readable_text_part_and_an_escaped_html_part():
    digest = notify.Digest("alice@example.test", [item(), item(name="old", days_left=-2)])
    message = notify.build_email(digest)
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    assert message.subject == "[CertConsole] 2 certificates need attention (1 expired)"
    assert "<shop> & co" in message.body  # plain text is not HTML-escaped
    assert "&lt;shop&gt; &amp; co" in html and "<shop>" not in html
    assert "6 days left" in message.body and "EXPIRED 2 days ago" in message.body
    assert "2 target bindings" in message.body and "2 bindings" in html
    assert "Auto-renewal: not set up" in message.body


def test_locmem_backend_receives_the_digest(settings, project, personas):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    make_cert(project, "svc", 1, owner="owner@example.test")
    reminders.run(now=NOW)
    assert sorted(m.to[0] for m in mail.outbox) == [
        "owner@example.test",
        "projectadmin@example.test",
    ]


def test_the_webhook_is_signed_and_slack_compatible(hooked, receiver, project, personas):
    make_cert(project, "svc", 3)
    make_cert(project, "gone", -1)
    result = reminders.run(now=NOW)

    [request] = receiver.wait_for(1)
    assert result.webhooks_sent == 1 and result.sent == 2
    assert request.method == "POST" and request.headers["Content-Type"] == "application/json"
    assert verify(request)
    body = request.json()
    assert body["text"].startswith("CertConsole (alpha): 2 certificates need attention")
    assert body["blocks"][0]["type"] == "section"
    assert {i["name"] for i in body["items"]} == {"svc", "gone"}
    assert {i["threshold"] for i in body["items"]} == {7, 0}
    assert set(NotificationLog.objects.values_list("channel", "state")) == {("webhook", "sent")}

    assert reminders.run(now=NOW).webhooks_sent == 0
    assert len(receiver.requests) == 1


def test_a_tampered_body_fails_verification(hooked, receiver, project, personas):
    make_cert(project, "svc", 3)
    reminders.run(now=NOW)
    [request] = receiver.wait_for(1)
    forged = type(request)(request.method, request.path, request.headers, request.body + b" ")
    assert verify(request) and not verify(forged)


def test_a_failing_webhook_is_retried_by_the_next_run(hooked, receiver, project, personas):
    make_cert(project, "svc", 3)
    receiver.status = 503
    failed = reminders.run(now=NOW)
    assert failed.failed == 1 and "503" in failed.errors[0]
    assert NotificationLog.objects.get().state == "failed"

    receiver.status = 200
    retried = reminders.run(now=NOW + timedelta(minutes=10))
    assert retried.webhooks_sent == 1
    assert len(receiver.wait_for(2)) == 2
    row = NotificationLog.objects.get()
    assert (row.state, row.attempts) == ("sent", 2)


def test_an_unreachable_webhook_fails_cleanly(project, personas):
    from tests.realservices.ports import free_port

    NotificationPolicy.objects.create(
        project=project, email_enabled=False, webhook_url=f"http://127.0.0.1:{free_port()}/"
    )
    make_cert(project, "svc", 3)
    result = reminders.run(now=NOW)
    assert result.failed == 1 and "unreachable" in result.errors[0]


def test_events_reach_the_webhook_too(hooked, receiver, project, personas):
    cert = make_cert(project, "svc", 60)
    reminders.notify_event(project, cert, "deployment_failed", "haproxy: reload failed")
    [request] = receiver.wait_for(1)
    assert verify(request)
    assert "haproxy: reload failed" in request.json()["text"]


def test_webhook_body_is_capped_for_slack():
    items = [item(name=f"c{i}") for i in range(60)]
    body = notify.webhook_body("alpha", items, NOW)
    assert len(body["blocks"]) == 47 and "15 more" in body["blocks"][-1]["elements"][0]["text"]
    assert len(body["items"]) == 60


def test_only_http_webhooks_are_called():
    with pytest.raises(notify.DeliveryError, match="http"):
        notify.send_webhook("file:///etc/passwd", b"", {"text": "x"})
