"""Fresh re-authentication for sensitive acts: when did this session last prove its password?

The session keeps the time of the last password check. Signing in sets it; a
sensitive view asks `recently_authenticated(request)` and, when the answer is
no, asks for the password again and calls `mark_authenticated(request)`.
"""

import time

from django.conf import settings
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

SESSION_KEY = "certconsole_authenticated_at"
FAILURES_KEY = "certconsole_reauth_failures"
# Wrong passwords a session may enter before it is signed out: a stolen session
# must not become a way to guess the password.
MAX_FAILURES = 5


def mark_authenticated(request) -> None:
    """Record that the user proved their password just now, in this session."""
    request.session[SESSION_KEY] = int(time.time())
    request.session.pop(FAILURES_KEY, None)


def note_failure(request) -> bool:
    """Count a wrong password; True when the session has had too many and must end."""
    failures = int(request.session.get(FAILURES_KEY, 0)) + 1
    request.session[FAILURES_KEY] = failures
    return failures >= MAX_FAILURES


def recently_authenticated(request, seconds: int | None = None) -> bool:
    """True when the session's last password check is at most `seconds` old (default: settings)."""
    if seconds is None:
        seconds = settings.CERTCONSOLE_SENSITIVE_REAUTH_SECONDS
    at = request.session.get(SESSION_KEY)
    if not isinstance(at, int | float):
        return False
    age = time.time() - at
    # A time in the future means a clock jump or a forged value: ask again.
    return 0 <= age <= seconds


@receiver(user_logged_in, dispatch_uid="certconsole.access.reauth.mark_on_login")
def mark_on_login(sender, request, user, **kwargs):
    """Signing in with a password counts as a fresh authentication."""
    if request is not None and hasattr(request, "session"):
        mark_authenticated(request)


def needs_second_factor(request) -> bool:
    """True when the user has a second factor this session has not proven in the last 5 minutes.

    Key export and role changes ask for a code then (see mfa.step_up).
    """
    from certconsole.access import mfa

    return mfa.needs_step_up(request)


def can_reauthenticate_with_password(request) -> bool:
    """Users signed in through an identity provider have no password here to re-enter."""
    return request.user.has_usable_password()
