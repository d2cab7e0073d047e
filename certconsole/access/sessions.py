"""Session policy: idle timeout, absolute lifetime, the active sessions list, sign-out everywhere.

Sessions live in Django's database backend; a UserSession row per session key
says whose it is, where it came from and when it was last seen, so a user can
list their sessions and end them. The times the policy checks are kept in the
session itself, so an ordinary request costs no query; the row is touched at
most once a minute.
"""

import time
from datetime import timedelta

from django.conf import settings
from django.contrib import auth, messages
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.contrib.auth.views import redirect_to_login
from django.contrib.sessions.models import Session
from django.dispatch import receiver
from django.utils import timezone

from certconsole.access.models import UserSession
from certconsole.audit import record

STARTED_KEY = "certconsole_session_started"
SEEN_KEY = "certconsole_session_seen"
TOUCH_SECONDS = 60


class SessionPolicyMiddleware:
    """End sessions that were idle too long or are older than the absolute lifetime."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            ended = self._check(request)
            if ended:
                auth.logout(request)
                messages.info(request, ended)
                return redirect_to_login(request.get_full_path())
        return self.get_response(request)

    def _check(self, request) -> str:
        now = int(time.time())
        session = request.session
        started = session.setdefault(STARTED_KEY, now)
        seen = session.get(SEEN_KEY, now)
        if now - started > settings.SESSION_ABSOLUTE_LIFETIME:
            return "Your session reached its maximum length: please sign in again."
        if now - seen > settings.SESSION_IDLE_TIMEOUT:
            minutes = settings.SESSION_IDLE_TIMEOUT // 60
            return f"You were signed out after {minutes} minutes without activity."
        if now - seen >= TOUCH_SECONDS or SEEN_KEY not in session:
            session[SEEN_KEY] = now
            _touch(request)
        return ""


def _client(request) -> dict:
    return {
        "ip": request.META.get("REMOTE_ADDR") or None,
        "user_agent": request.META.get("HTTP_USER_AGENT", "")[:300],
    }


def _touch(request) -> None:
    """Keep the session's row current (created when missing, e.g. after a deploy)."""
    from certconsole.access import mfa

    key = request.session.session_key
    if not key:
        return
    now = timezone.now()
    updated = UserSession.objects.filter(session_key=key, user=request.user).update(last_seen=now)
    if not updated:
        UserSession.objects.update_or_create(
            session_key=key,
            defaults={"user": request.user, "last_seen": now, **_client(request)},
        )
    # Memberships may have changed since: refresh what the MFA banner says.
    mfa.refresh_withheld(request)


@receiver(user_logged_in, dispatch_uid="certconsole.access.sessions.on_login")
def on_login(sender, request, user, **kwargs):
    from certconsole.access import mfa

    if request is None or not hasattr(request, "session"):
        return
    if not request.session.session_key:
        request.session.save()
    now = int(time.time())
    request.session[STARTED_KEY] = now
    request.session[SEEN_KEY] = now
    UserSession.objects.update_or_create(
        session_key=request.session.session_key,
        defaults={"user": user, "last_seen": timezone.now(), **_client(request)},
    )
    mfa.refresh_withheld(request, user)


@receiver(user_logged_out, dispatch_uid="certconsole.access.sessions.on_logout")
def on_logout(sender, request, user, **kwargs):
    if request is not None and hasattr(request, "session") and request.session.session_key:
        UserSession.objects.filter(session_key=request.session.session_key).delete()


def active_sessions(user) -> list[UserSession]:
    """The user's sessions that Django still holds and that have not reached a limit."""
    now = timezone.now()
    idle_cut = now - timedelta(seconds=settings.SESSION_IDLE_TIMEOUT)
    life_cut = now - timedelta(seconds=settings.SESSION_ABSOLUTE_LIFETIME)
    live = Session.objects.filter(expire_date__gt=now).values("session_key")
    rows = UserSession.objects.filter(user=user, session_key__in=live)
    # last_seen is touched at most once a minute: allow for it before calling a session idle.
    rows = rows.filter(last_seen__gt=idle_cut - timedelta(seconds=TOUCH_SECONDS))
    return list(rows.filter(created_at__gt=life_cut))


def end_session(actor, row: UserSession, reason: str = "") -> None:
    """End one of the actor's own sessions."""
    Session.objects.filter(session_key=row.session_key).delete()
    row.delete()
    record(actor, "session.end", row.user, reason=reason, ip=row.ip or "")


def end_all_sessions(request, keep_current: bool = False) -> int:
    """Sign out everywhere: end every session of the user (optionally not this one)."""
    user = request.user
    rows = UserSession.objects.filter(user=user)
    if keep_current:
        rows = rows.exclude(session_key=request.session.session_key)
    keys = list(rows.values_list("session_key", flat=True))
    Session.objects.filter(session_key__in=keys).delete()
    rows.delete()
    record(user, "session.end_all", user, count=len(keys), kept_current=keep_current)
    return len(keys)
