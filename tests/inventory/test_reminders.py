"""Expiry reminders arrive exactly once, over a real SMTP server (aiosmtpd)."""

import hashlib
import itertools
import json
import threading
from datetime import datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from certconsole.access.models import UserPreference
from certconsole.audit.models import AuditEvent
from inventory import reminders
from inventory.models import (
    Certificate,
    CertificateVersion,
    NotificationLog,
    NotificationPolicy,
)
from tests.realservices import require
from tests.realservices.smtp import SmtpSink

NOW = timezone.make_aware(datetime(2026, 12, 2, 9, 0))  # a Wednesday
_serial = itertools.count(1)


def make_cert(project, name, days, *, owner="", key_size=2048, chain_complete=True, now=NOW):
    """A certificate with one minimal current version expiring `days` days (+1 h) after now."""
    cert = Certificate.objects.create(project=project, name=name, label_owner=owner)
    version = make_version(cert, days, key_size=key_size, now=now)
    version.chain_complete = chain_complete
    version.save(update_fields=["chain_complete"])
    Certificate.objects.filter(pk=cert.pk).update(
        current_version=version,
        primary_domain=f"{name}.example.test",
        key_type=f"RSA-{key_size}",
        not_after=version.not_after,
        san_count=1,
    )
    cert.refresh_from_db()
    return cert


def make_version(certificate, days, *, key_size=2048, now=NOW):
    """A minimal (not parsed) version row of certificate."""
    number = next(_serial)
    name = certificate.name
    sha = hashlib.sha256(f"{name}-{number}".encode()).hexdigest()
    return CertificateVersion.objects.create(
        certificate=certificate,
        project=certificate.project,
        der=b"-",
        sha256=sha,
        sha1=sha[:40],
        serial=f"{number:x}",
        subject=f"CN={name}.example.test",
        issuer="CN=Test CA",
        common_name=f"{name}.example.test",
        sans=[{"kind": "dns", "value": f"{name}.example.test"}],
        not_before=now - timedelta(days=60),
        not_after=now + timedelta(days=days, hours=1),
        key_type=f"RSA-{key_size}",
        key_size=key_size,
        signature_algorithm="sha256WithRSAEncryption",
        spki_sha256=sha,
    )


@pytest.fixture
def smtp(settings):
    with require(SmtpSink, reject=r"@bad\.example$") as sink:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST = sink.host
        settings.EMAIL_PORT = sink.port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
        settings.EMAIL_TIMEOUT = 5
        yield sink


def by_recipient(messages) -> dict:
    return {m["To"]: m for m in messages}


def parts(message) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return text, html


@pytest.fixture
def due(personas, project):
    """Two certificates owned by alice (20 and 5 days left), one expired, one far away."""
    return {
        "shop": make_cert(project, "shop-web", 20, owner="Alice@Example.test"),
        "api": make_cert(project, "api-gw", 5, owner="alice@example.test"),
        "old": make_cert(project, "legacy-box", -3),
        "far": make_cert(project, "future-svc", 100, owner="alice@example.test"),
    }


def test_crossed_threshold_is_the_smallest_one_already_crossed():
    thresholds = [45, 30, 14, 7, 3, 1, 0]
    assert reminders.crossed_threshold(NOW + timedelta(days=20), thresholds, NOW) == 30
    assert reminders.crossed_threshold(NOW + timedelta(days=46), thresholds, NOW) is None
    assert reminders.crossed_threshold(NOW + timedelta(hours=5), thresholds, NOW) == 1
    assert reminders.crossed_threshold(NOW - timedelta(hours=1), thresholds, NOW) == 0
    assert reminders.next_threshold(NOW + timedelta(days=20), thresholds, NOW) == (
        14,
        NOW + timedelta(days=6),
    )


def test_each_recipient_gets_one_digest_listing_every_due_certificate(smtp, due, project):
    result = reminders.run(now=NOW)

    messages = by_recipient(smtp.wait_for(2))
    assert set(messages) == {"alice@example.test", "projectadmin@example.test"}
    text, html = parts(messages["alice@example.test"])
    for body in (text, html):
        assert "shop-web" in body and "api-gw" in body
        assert "future-svc" not in body and "legacy-box" not in body
        assert "shop-web.example.test" in body
        assert "not set up" in body
        assert "not deployed" in body
        assert f"http://testserver/certificates/{due['shop'].pk}/" in body
    assert "20 days left" in text and "5 days left" in text
    assert due["shop"].not_after.strftime("%Y-%m-%d") in text
    admin_text, _ = parts(messages["projectadmin@example.test"])
    assert "EXPIRED 2 days ago" in admin_text or "EXPIRED 3 days ago" in admin_text
    assert (
        messages["alice@example.test"]["Subject"] == "[CertConsole] 2 certificates need attention"
    )
    assert (result.sent, result.failed, result.emails_sent) == (5, 0, 2)
    thresholds = dict(
        NotificationLog.objects.filter(recipient="alice@example.test").values_list(
            "certificate__name", "threshold"
        )
    )
    assert thresholds == {"shop-web": 30, "api-gw": 7}


def test_a_second_run_sends_nothing_until_the_next_threshold(smtp, due):
    reminders.run(now=NOW)
    smtp.wait_for(2)
    again = reminders.run(now=NOW + timedelta(hours=3))
    assert (again.due, again.claimed, again.sent) == (5, 0, 0)
    assert len(smtp.messages) == 2

    # Ten days later shop (now 10 days left) crossed 14, api (−5) has expired.
    later = reminders.run(now=NOW + timedelta(days=10))
    assert later.sent == 4
    messages = smtp.wait_for(4)[2:]
    text, _ = parts(by_recipient(messages)["alice@example.test"])
    assert "10 days left" in text and "EXPIRED" in text
    assert len(smtp.messages) == 4


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_the_same_time_send_each_reminder_once(smtp, due):
    barrier = threading.Barrier(2)
    results, errors = [], []

    def run():
        try:
            barrier.wait(5)
            results.append(reminders.run(now=NOW))
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert not errors and len(results) == 2
    assert sum(r.sent for r in results) == 5
    smtp.wait_for(2)
    sent_pairs = [
        (m["To"], name)
        for m in smtp.messages
        for name in ("shop-web", "api-gw", "legacy-box")
        if f"* {name} (" in parts(m)[0]
    ]
    assert len(sent_pairs) == len(set(sent_pairs)) == 5, sent_pairs
    assert NotificationLog.objects.filter(state="sent").count() == 5


def test_a_rejected_address_does_not_block_the_others_and_is_retried_alone(smtp, due, project):
    NotificationPolicy.objects.create(
        project=project, extra_recipients=["ops@bad.example", "team@example.test"]
    )
    first = reminders.run(now=NOW)

    assert set(by_recipient(smtp.wait_for(3))) == {
        "alice@example.test",
        "projectadmin@example.test",
        "team@example.test",
    }
    assert first.failed == 3 and "ops@bad.example" in first.errors[0]
    failed = NotificationLog.objects.filter(state="failed")
    assert set(failed.values_list("recipient", flat=True)) == {"ops@bad.example"}
    assert "550" in failed.first().error

    smtp.reject = None  # the address was fixed on the mail server
    second = reminders.run(now=NOW + timedelta(hours=1))
    assert (second.sent, second.emails_sent) == (3, 1)
    messages = smtp.wait_for(4)
    assert [m["To"] for m in messages[3:]] == ["ops@bad.example"]
    assert NotificationLog.objects.get(recipient="ops@bad.example", threshold=30).attempts == 2
    assert not NotificationLog.objects.exclude(state="sent").exists()


def test_a_down_mail_server_marks_nothing_sent_and_the_next_run_sends(smtp, due):
    smtp.stop()
    down = reminders.run(now=NOW)
    assert (down.sent, down.failed) == (0, 5)
    assert set(NotificationLog.objects.values_list("state", flat=True)) == {"failed"}

    smtp.start()
    up = reminders.run(now=NOW + timedelta(hours=1))
    assert (up.sent, up.failed) == (5, 0)
    assert len(smtp.wait_for(2)) == 2
    assert set(NotificationLog.objects.values_list("state", flat=True)) == {"sent"}


def test_a_renewed_certificate_stops_the_old_versions_reminders(smtp, due, project):
    reminders.run(now=NOW)
    smtp.wait_for(2)
    shop = due["shop"]
    renewed = make_version(shop, 90)
    shop.set_current(renewed)

    after = reminders.run(now=NOW + timedelta(days=10))
    assert not NotificationLog.objects.filter(certificate=shop, version=renewed).exists()
    assert all("shop-web" not in parts(m)[0] for m in smtp.messages[2:])
    assert after.sent == 2  # api crossed 0 for alice and the admin; shop stays quiet


def test_quiet_days_hold_the_digest_until_the_next_day(smtp, due, project):
    NotificationPolicy.objects.create(project=project, quiet_days=[NOW.weekday()])
    quiet = reminders.run(now=NOW)
    assert quiet.quiet_projects == ["alpha"] and quiet.sent == 0
    assert not NotificationLog.objects.exists()

    next_day = reminders.run(now=NOW + timedelta(days=1))
    assert next_day.sent == 5
    assert len(smtp.wait_for(2)) == 2


def test_a_member_who_opted_out_gets_no_digest_except_for_certificates_they_own(
    smtp, personas, project
):
    admin = personas["projectadmin"]
    UserPreference.objects.create(user=admin).digest_opt_out.add(project)
    make_cert(project, "theirs", 10, owner=admin.email)
    make_cert(project, "others", 10)
    reminders.run(now=NOW)

    [message] = smtp.wait_for(1)
    text, _ = parts(message)
    assert message["To"] == admin.email and "theirs" in text and "others" not in text


def test_recipients_by_role_and_no_email_channel(smtp, personas, project):
    NotificationPolicy.objects.create(project=project, recipient_roles=["deployer", "viewer"])
    make_cert(project, "svc", 2)
    reminders.run(now=NOW)
    assert set(by_recipient(smtp.wait_for(2))) == {"deployer@example.test", "viewer@example.test"}

    NotificationPolicy.objects.filter(project=project).update(email_enabled=False)
    make_cert(project, "svc2", 2)
    assert reminders.run(now=NOW).due == 0


def test_dry_run_claims_nothing_and_the_command_reports_json(smtp, due):
    out = StringIO()
    call_command("send_reminders", "--dry-run", "--json", "--now", "2026-12-02T09:00", stdout=out)
    data = json.loads(out.getvalue())
    assert data["dry_run"] is True and data["due"] == 5
    assert {row["recipient"] for row in data["planned"]} == {
        "alice@example.test",
        "projectadmin@example.test",
    }
    assert not NotificationLog.objects.exists() and smtp.messages == []

    out = StringIO()
    call_command("send_reminders", "--project", "alpha", "--now", "2026-12-02", stdout=out)
    assert "5 sent (2 email(s)" in out.getvalue()
    assert len(smtp.wait_for(2)) == 2


def test_notify_event_goes_through_the_same_path(smtp, due, project):
    result = reminders.notify_event(
        project, due["far"], "renewal_failed", "Automatic renewal failed: DNS timeout"
    )
    assert result.sent == 2
    messages = by_recipient(smtp.wait_for(2))
    text, html = parts(messages["alice@example.test"])
    assert "Automatic renewal failed: DNS timeout" in text and "future-svc" in html
    assert messages["alice@example.test"]["Subject"].startswith(
        "[CertConsole] Automatic renewal failed"
    )
    rows = NotificationLog.objects.filter(kind="renewal_failed")
    assert rows.count() == 2 and {r.state for r in rows} == {"sent"}
    with pytest.raises(ValueError):
        reminders.notify_event(project, due["far"], "expiry", "no")


def test_a_failed_event_is_retried_by_the_next_run(smtp, due, project):
    smtp.stop()
    failed = reminders.notify_event(project, due["far"], "deployment_failed", "nginx: bad config")
    assert failed.failed == 2
    smtp.start()
    reminders.run(now=NOW)
    texts = [parts(m)[0] for m in smtp.wait_for(2)]
    assert sum("nginx: bad config" in t for t in texts) == 2
    assert set(
        NotificationLog.objects.filter(kind="deployment_failed").values_list("state", flat=True)
    ) == {"sent"}


@pytest.mark.django_db(transaction=True)
def test_the_daily_job_runs_on_a_notify_worker(smtp, personas, project, rq_redis):
    import django_rq
    from rq import SimpleWorker

    from certconsole.jobs import enqueue
    from certconsole.schedule import SCHEDULE

    [entry] = [e for e in SCHEDULE if e.func == "inventory.jobs.send_reminders_job"]
    assert entry.queue == "notify"
    for name, days in (("shop-web", 20), ("api-gw", 5), ("legacy-box", -3)):
        make_cert(project, name, days, owner="alice@example.test", now=timezone.now())
    enqueue(entry.func, queue=entry.queue)
    queue = django_rq.get_queue("notify")
    assert queue.count == 1
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    assert len(smtp.wait_for(2)) == 2
    assert NotificationLog.objects.filter(state="sent").count() == 6


def test_the_notifications_page_costs_the_same_queries_with_more_rows(
    smtp, client_for, project, personas
):
    client = client_for("viewer")
    for i in range(3):
        make_cert(project, f"few{i}", 5, owner="alice@example.test")
    reminders.run(now=NOW)
    client.get("/certificates/notifications/")
    with CountQueries() as few:
        client.get("/certificates/notifications/")
    for i in range(30):
        make_cert(project, f"more{i}", 5 + i, owner=f"o{i}@example.test")
    reminders.run(now=NOW + timedelta(hours=1))
    with CountQueries() as more:
        client.get("/certificates/notifications/")
    assert len(more) == len(few)


def test_query_count_does_not_grow_with_certificates(smtp, personas, project):
    for i in range(3):
        make_cert(project, f"a{i}", 5, owner="alice@example.test")
    for i in range(40):
        make_cert(project, f"quiet{i}", 200)
    with CountQueries() as small:
        reminders.run(now=NOW)
    for i in range(3):
        make_cert(project, f"b{i}", 5, owner="alice@example.test")
    for i in range(200):
        make_cert(project, f"quieter{i}", 300)
    with CountQueries() as large:
        reminders.run(now=NOW + timedelta(days=3))
    assert len(large) == len(small)


class CountQueries:
    def __enter__(self):
        from django.test.utils import CaptureQueriesContext

        self._ctx = CaptureQueriesContext(connection)
        self._ctx.__enter__()
        return self._ctx

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


# The policy page -----------------------------------------------------------------------------


def test_a_project_admin_edits_the_policy_and_it_is_audited(client_for, project):
    client = client_for("projectadmin")
    response = client.post(
        "/certificates/notifications/alpha/policy/",
        {
            "enabled": "on",
            "thresholds": "60, 30, 7, 0, 7",
            "notify_owner": "on",
            "recipient_roles": ["projectadmin", "deployer"],
            "extra_recipients": "Ops@Example.test\nteam@example.test",
            "email_enabled": "on",
            "webhook_url": "https://hooks.example.test/T000",
            "webhook_secret": "s3cret",
            "quiet_days": ["5", "6"],
        },
    )
    assert response.status_code == 302
    policy = NotificationPolicy.objects.get(project=project)
    assert policy.thresholds == [60, 30, 7, 0]
    assert policy.extra_recipients == ["ops@example.test", "team@example.test"]
    assert policy.quiet_days == [5, 6]
    assert policy.webhook_secret() == b"s3cret" and "s3cret" not in policy.encrypted_webhook_secret
    event = AuditEvent.objects.get(action="notification_policy.change")
    assert event.detail["before"] is None
    assert event.detail["after"]["thresholds"] == [60, 30, 7, 0]
    assert event.detail["after"]["webhook_secret_set"] is True
    assert "s3cret" not in json.dumps(event.detail)

    # An empty secret keeps the current one; before/after show the change.
    client.post(
        "/certificates/notifications/alpha/policy/",
        {"enabled": "on", "thresholds": "14, 1", "webhook_url": "https://hooks.example.test/T0"},
    )
    policy.refresh_from_db()
    assert policy.webhook_secret() == b"s3cret" and policy.thresholds == [14, 1]
    second = AuditEvent.objects.filter(action="notification_policy.change").order_by("-id")[0]
    assert second.detail["before"]["thresholds"] == [60, 30, 7, 0]
    assert second.detail["after"]["thresholds"] == [14, 1]


def test_the_policy_form_keeps_input_and_explains_errors(client_for, project):
    response = client_for("projectadmin").post(
        "/certificates/notifications/alpha/policy/",
        {"thresholds": "30, soon", "extra_recipients": "not-an-address"},
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "“soon” is not a whole number of days." in body
    assert "“not-an-address” is not an email address." in body
    assert 'value="30, soon"' in body
    assert not NotificationPolicy.objects.exists()


def test_the_policy_rejects_other_roles_and_get_changes_nothing(client_for, project):
    assert (
        client_for("requester").post("/certificates/notifications/alpha/policy/", {}).status_code
        == 403
    )
    assert AuditEvent.objects.filter(action="access.denied").exists()
    assert (
        client_for("projectadmin").delete("/certificates/notifications/alpha/policy/").status_code
        == 405
    )


# The notifications page ----------------------------------------------------------------------


def test_the_notifications_page_shows_what_was_sent_and_what_is_next(
    smtp, client_for, due, project
):
    reminders.run(now=NOW)
    response = client_for("viewer").get("/certificates/notifications/")
    body = response.content.decode()
    assert "alice@example.test" in body and "30-day reminder" in body and "Expired" in body
    # far (100 days left) gets its 45-day reminder 55 days from now.
    far_when = (due["far"].not_after - timedelta(days=45)).strftime("%Y-%m-%d")
    assert far_when in body and "45 days before" in body
    assert "Edit the notification policy" not in body
    admin_body = client_for("projectadmin").get("/certificates/notifications/").content.decode()
    assert "Edit the notification policy" in admin_body


def test_the_notifications_page_hides_other_projects(client_for, due, other_project):
    make_cert(other_project, "beta-cert", 3, owner="x@example.test")
    body = client_for("viewer").get("/certificates/notifications/?scope=all").content.decode()
    assert "beta-cert" not in body and "shop-web" in body


def test_the_digest_says_where_a_certificate_is_deployed(smtp, personas, project):
    from deployments.models import Binding, Target

    cert = make_cert(project, "edge-cert", 6, owner="alice@example.test")
    target = Target.objects.create(project=project, name="edge", kind="manual")
    for host in ("a.test", "b.test"):
        Binding.objects.create(project=project, certificate=cert, target=target, probe_host=host)
    reminders.run(now=NOW)
    text, html = parts(by_recipient(smtp.wait_for(2))["alice@example.test"])
    assert "Deployed on:  2 target bindings" in text and "2 bindings" in html


def test_the_digest_says_whether_auto_renewal_is_set_up(smtp, personas, project):
    from orders.models import RenewalPolicy

    renewing = make_cert(project, "renewing", 6, owner="alice@example.test")
    RenewalPolicy.objects.create(certificate=renewing, last_result="failed: DNS timeout")
    make_cert(project, "manual", 6, owner="alice@example.test")
    reminders.run(now=NOW)
    text, html = parts(by_recipient(smtp.wait_for(2))["alice@example.test"])
    renewing_part = text.split("* renewing")[1].split("* ")[0]
    assert "Auto-renewal: set up (last result: failed: DNS timeout)" in renewing_part
    assert "Auto-renewal: not set up" in text.split("* manual")[1].split("* ")[0]
    assert "failed: DNS timeout" in html
