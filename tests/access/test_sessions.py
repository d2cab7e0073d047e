"""Session policy: idle timeout, absolute lifetime, active sessions, sign-out everywhere."""

import time

from django.test import Client
from django.urls import reverse

from certconsole.access import sessions
from certconsole.access.models import UserSession
from certconsole.audit.models import AuditEvent
from tests.access.mfa_support import sign_in

DASHBOARD = "/"


def signed_in_client(username, agent="TestBrowser/1.0"):
    client = Client(HTTP_USER_AGENT=agent, REMOTE_ADDR="127.0.0.9")
    assert sign_in(client, username).status_code == 302
    return client


def age_session(client, key, seconds):
    session = client.session
    session[key] -= seconds
    session.save()


def test_an_idle_session_ends_with_a_message(personas, settings):
    client = signed_in_client("viewer")
    age_session(client, sessions.SEEN_KEY, settings.SESSION_IDLE_TIMEOUT + 5)
    response = client.get(DASHBOARD, follow=True)
    assert response.redirect_chain[0][0].startswith(reverse("login"))
    assert "without activity" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert not UserSession.objects.exists()


def test_activity_keeps_a_session_alive(personas, settings):
    client = signed_in_client("viewer")
    age_session(client, sessions.SEEN_KEY, settings.SESSION_IDLE_TIMEOUT - 120)
    assert client.get(DASHBOARD).status_code == 200
    assert abs(client.session[sessions.SEEN_KEY] - time.time()) < 5


def test_a_session_ends_at_its_absolute_lifetime_despite_activity(personas, settings):
    client = signed_in_client("viewer")
    age_session(client, sessions.STARTED_KEY, settings.SESSION_ABSOLUTE_LIFETIME + 5)
    response = client.get(DASHBOARD, follow=True)
    assert "maximum length" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_the_security_page_lists_the_users_sessions(personas):
    first = signed_in_client("viewer", "Firefox/140")
    signed_in_client("viewer", "Chromium/150")
    signed_in_client("deployer", "Other/1")
    page = first.get(reverse("security")).content.decode()
    assert "Firefox/140" in page and "Chromium/150" in page and "Other/1" not in page
    assert "this session" in page and "127.0.0.9" in page


def test_sign_out_everywhere_ends_every_session_and_is_audited(personas):
    first, second = signed_in_client("viewer"), signed_in_client("viewer")
    other_user = signed_in_client("deployer")

    session = first.session
    session[sessions.SEEN_KEY] -= 120  # this request also touches the session it ends
    session.save()
    response = first.post(reverse("session-end-all"), follow=True)

    assert "Signed out everywhere (2 session(s))" in response.content.decode()
    assert first.get(DASHBOARD).status_code == 302
    assert second.get(DASHBOARD).status_code == 302
    assert other_user.get(DASHBOARD).status_code == 200
    event = AuditEvent.objects.get(action="session.end_all")
    assert event.detail == {"count": 2, "kept_current": False}


def test_signing_out_the_other_sessions_keeps_this_one(personas):
    first, second = signed_in_client("viewer"), signed_in_client("viewer")
    first.post(reverse("session-end-all"), {"keep_current": "1"})
    assert first.get(DASHBOARD).status_code == 200
    assert second.get(DASHBOARD).status_code == 302


def test_one_session_can_be_signed_out(personas):
    first, second = signed_in_client("viewer"), signed_in_client("viewer")
    row = UserSession.objects.get(session_key=second.session.session_key)
    assert first.get(reverse("session-end", args=[row.pk])).status_code == 405
    first.post(reverse("session-end", args=[row.pk]))
    assert second.get(DASHBOARD).status_code == 302
    assert first.get(DASHBOARD).status_code == 200
    assert AuditEvent.objects.filter(action="session.end").count() == 1


def test_signing_out_removes_the_sessions_row(personas):
    client = signed_in_client("viewer")
    assert UserSession.objects.count() == 1
    client.post(reverse("logout"))
    assert not UserSession.objects.exists()


def test_the_password_policy_still_applies(client_for):
    response = client_for("viewer").post(
        reverse("password_change"),
        {
            "old_password": "correct horse battery staple",
            "new_password1": "short",
            "new_password2": "short",
        },
    )
    assert response.status_code == 200
    assert "too short" in response.content.decode()
