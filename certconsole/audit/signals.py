"""Sign-in events are audited from day one."""

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from certconsole.audit import record


@receiver(user_logged_in)
def audit_login(sender, request, user, **kwargs):
    record(user, "auth.login", user)


@receiver(user_logged_out)
def audit_logout(sender, request, user, **kwargs):
    if user is not None:
        record(user, "auth.logout", user)


@receiver(user_login_failed)
def audit_login_failed(sender, credentials, request=None, **kwargs):
    # The attempted name is evidence; the password never is.
    username = str(credentials.get("username", ""))[:150]
    record(None, "auth.login_failed", attempted_username=username)
