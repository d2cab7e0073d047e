"""LDAP / Active Directory sign-in (django-auth-ldap): bind, search, group mapping.

Configured from the environment by `ldap_config.ldap_settings` (called from
settings.py when AUTH_LDAP_SERVER_URI is set). The service account binds, finds the user
with AUTH_LDAP_USER_FILTER, and the user's own password is checked by binding
as them. Their groups' names (the cn) are mapped to project roles by the same
GroupMapping rows as single sign-on. A directory that cannot be reached is
audited and the sign-in page says so; a local account of the same name is never
taken over.
"""

import ldap
from django.contrib.auth import get_user_model
from django.dispatch import receiver
from django_auth_ldap import backend as ldap_backend

from certconsole.access.models import ExternalIdentity, IdentitySource
from certconsole.audit import record

ERROR_ATTR = "_certconsole_ldap_error"


class LDAPBackend(ldap_backend.LDAPBackend):
    """django-auth-ldap's backend, with group → role sync and no takeover of local accounts."""

    def get_or_build_user(self, username, ldap_user):
        identity = (
            ExternalIdentity.objects.filter(source=IdentitySource.LDAP, subject=username)
            .select_related("user")
            .first()
        )
        if identity is not None:
            return identity.user, False
        if get_user_model().objects.filter(username=username).exists():
            record(
                None,
                "ldap.login_failed",
                None,
                why="a local account has this name",
                username=username[:150],
            )
            raise ldap_user.AuthenticationFailed("a local account already has this name")
        return super().get_or_build_user(username, ldap_user)

    def authenticate_ldap_user(self, ldap_user, password):
        from certconsole.access.sso import sync_memberships

        user = super().authenticate_ldap_user(ldap_user, password)
        if user is None:
            return None
        if not ExternalIdentity.objects.filter(source=IdentitySource.LDAP, user=user).exists():
            ExternalIdentity.objects.create(
                user=user, source=IdentitySource.LDAP, subject=user.get_username()
            )
            record(None, "user.create", user, source=IdentitySource.LDAP, dn=ldap_user.dn)
        try:
            groups = ldap_user.group_names
        except ldap.LDAPError as exc:
            _failed(ldap_user._request, f"group search: {exc!r}")
            return None
        sync_memberships(user, IdentitySource.LDAP, groups)
        return user


def _failed(request, why: str) -> None:
    record(None, "ldap.login_failed", None, why=why[:500])
    if request is not None:
        setattr(
            request,
            ERROR_ATTR,
            "The directory server could not be reached or refused the search: "
            "try again later, or ask an administrator.",
        )


@receiver(ldap_backend.ldap_error, dispatch_uid="certconsole.access.ldap_auth.on_error")
def on_ldap_error(sender, context, user, request, exception, **kwargs):
    """django-auth-ldap swallows directory errors; audit them and tell the sign-in page."""
    _failed(request, f"{context}: {exception!r}")
