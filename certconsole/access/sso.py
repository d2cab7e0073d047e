"""Single sign-on with OpenID Connect, and the group → (project, role) sync shared with LDAP.

The backend subclasses mozilla-django-oidc's and tightens it: the ID token's
signature, issuer, audience and expiry are all checked (the library skips the
audience), users are linked by the provider's `sub` claim, created on first
sign-in without a usable password, and their memberships follow the group
mappings. Every failure is audited and ends on the sign-in page with a message;
nothing half-signs anyone in.
"""

import logging

import jwt
import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.http import Http404
from django.shortcuts import redirect
from django.views import View
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import (
    OIDCAuthenticationCallbackView,
    OIDCAuthenticationRequestView,
)

from certconsole.access.models import (
    ExternalIdentity,
    GroupMapping,
    IdentitySource,
    LastAdminError,
    Membership,
    Project,
    SyncedMembership,
)
from certconsole.audit import record

log = logging.getLogger(__name__)
ERROR_ATTR = "_certconsole_sso_error"


class SignInRefused(SuspiciousOperation):
    """The identity provider's answer cannot sign anyone in (message safe to show)."""


# --- users and memberships from an identity provider ---------------------------------------


def link_user(source: str, subject: str, username: str, email: str = "", **names):
    """The local user for this external subject, created (and audited) on first sign-in."""
    identity = (
        ExternalIdentity.objects.filter(source=source, subject=subject)
        .select_related("user")
        .first()
    )
    User = get_user_model()
    if identity is not None:
        user = identity.user
        changed = {
            k: v for k, v in {"email": email, **names}.items() if v and getattr(user, k) != v
        }
        if changed:
            User.objects.filter(pk=user.pk).update(**changed)
            for key, value in changed.items():
                setattr(user, key, value)
        return user
    if not username:
        raise SignInRefused("The identity provider sent no user name.")
    if User.objects.filter(username=username).exists():
        raise SignInRefused(
            f"A local account is already called “{username}”; an administrator must link it."
        )
    with transaction.atomic():
        user = User(username=username[:150], email=email, **names)
        user.set_unusable_password()
        user.save()
        ExternalIdentity.objects.create(user=user, source=source, subject=subject)
        record(None, "user.create", user, source=source, subject=subject, email=email)
    return user


def sync_memberships(user, source: str, groups) -> None:
    """Grant the roles the user's groups map to and take back those they no longer do.

    Only memberships this sync gave are taken back; roles granted by hand stay.
    Every change goes through grant_role/revoke_role, so each one is audited.
    """
    groups = sorted({str(g) for g in groups or []})
    wanted = set(
        GroupMapping.objects.filter(source=source, group__in=groups).values_list(
            "project_id", "role"
        )
    )
    synced = {
        (s.membership.project_id, s.membership.role): s.membership
        for s in SyncedMembership.objects.filter(
            source=source, membership__user=user
        ).select_related("membership__project", "membership__user")
    }
    label = IdentitySource(source).label
    for project_id, role in sorted(wanted - synced.keys()):
        if Membership.objects.filter(user=user, project_id=project_id, role=role).exists():
            continue
        project = Project.objects.get(pk=project_id)
        membership = project.grant_role(
            None, user, role, reason=f"{label} groups: {', '.join(groups)}"
        )
        SyncedMembership.objects.create(membership=membership, source=source)
    for key in sorted(synced.keys() - wanted):
        membership = synced[key]
        try:
            membership.project.revoke_role(
                None, membership, reason=f"No longer in a {label} group mapped to this role"
            )
        except LastAdminError:
            record(
                None,
                "membership.sync_kept",
                membership.project,
                reason="Last ProjectAdmin of the project",
                user=user.get_username(),
                role=membership.role,
                source=source,
            )


def sso_failed(request, why: str, shown: str = "") -> None:
    """Audit a failed single sign-on and keep a message for the sign-in page."""
    record(None, "sso.login_failed", None, why=why[:500], source=IdentitySource.OIDC)
    if request is not None:
        setattr(request, ERROR_ATTR, shown or "Single sign-on failed. Try again or ask an admin.")


# --- the backend ----------------------------------------------------------------------------


class OIDCBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend with audience, issuer and expiry checks and group sync."""

    def authenticate(self, request, **kwargs):
        if request is None or "nonce" not in kwargs:
            return None  # not an OpenID Connect callback (e.g. the password form)
        try:
            return super().authenticate(request, **kwargs)
        except SignInRefused as exc:
            sso_failed(request, str(exc), str(exc))
        except (SuspiciousOperation, jwt.PyJWTError) as exc:
            sso_failed(request, f"{type(exc).__name__}: {exc}")
        except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
            sso_failed(
                request,
                f"{type(exc).__name__}: {exc}",
                "The identity provider could not be reached or gave an unusable answer.",
            )
        return None

    def _verify_jws(self, payload, key):
        header = jwt.get_unverified_header(payload)
        if header.get("alg") != self.OIDC_RP_SIGN_ALGO:
            raise SuspiciousOperation(f"Unexpected token algorithm {header.get('alg')!r}.")
        try:
            return jwt.decode(
                payload,
                key,
                algorithms=[self.OIDC_RP_SIGN_ALGO],
                audience=self.OIDC_RP_CLIENT_ID,
                issuer=settings.OIDC_ISSUER,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
                leeway=30,
            )
        except jwt.PyJWTError as exc:
            raise SuspiciousOperation(f"ID token rejected: {exc}") from exc

    def get_or_create_user(self, access_token, id_token, payload):
        try:
            return self._user_from_claims(access_token, id_token, payload)
        except SignInRefused as exc:
            sso_failed(self.request, str(exc), str(exc))
            return None

    def _user_from_claims(self, access_token, id_token, payload):
        userinfo = self.get_userinfo(access_token, id_token, payload)
        if userinfo.get("sub") != payload.get("sub"):
            raise SuspiciousOperation("The userinfo subject differs from the ID token's.")
        claims = {**payload, **userinfo}
        user = link_user(
            IdentitySource.OIDC,
            str(claims["sub"]),
            str(claims.get(settings.OIDC_USERNAME_CLAIM) or claims.get("email") or ""),
            email=str(claims.get("email") or ""),
            first_name=str(claims.get("given_name") or "")[:150],
            last_name=str(claims.get("family_name") or "")[:150],
        )
        if not user.is_active:
            raise SignInRefused("This account is disabled.")
        groups = claims.get(settings.OIDC_GROUPS_CLAIM) or []
        if isinstance(groups, str):
            groups = [groups]
        sync_memberships(user, IdentitySource.OIDC, groups)
        return user


# --- the two views -------------------------------------------------------------------------


class StartView(OIDCAuthenticationRequestView):
    """Redirect to the identity provider (404 when single sign-on is not configured)."""

    def __init__(self, **kwargs):
        View.__init__(self, **kwargs)

    def get(self, request):
        if not settings.OIDC_ENABLED:
            raise Http404("Single sign-on is not configured.")
        self.OIDC_OP_AUTH_ENDPOINT = settings.OIDC_OP_AUTHORIZATION_ENDPOINT
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        return super().get(request)


class CallbackView(OIDCAuthenticationCallbackView):
    """The provider's redirect back: sign in, then ask for the second factor when there is one."""

    def get(self, request):
        if not settings.OIDC_ENABLED:
            raise Http404("Single sign-on is not configured.")
        try:
            return super().get(request)
        except SuspiciousOperation as exc:
            sso_failed(
                request, str(exc), "The sign-in expired or was started elsewhere: try again."
            )
            return self.login_failure()

    def login_success(self):
        from certconsole.access import mfa

        next_url = self.success_url
        self.request.session.pop("oidc_login_next", None)
        return mfa.begin_login(self.request, self.user, self.user.backend, next_url)

    def login_failure(self):
        error = getattr(self.request, ERROR_ATTR, None)
        if error is None:
            error = "Single sign-on was cancelled or refused."
            if self.request.GET.get("error"):
                sso_failed(self.request, f"provider error: {self.request.GET['error'][:100]}")
        messages.error(self.request, error)
        return redirect("login")
