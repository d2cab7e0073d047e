"""`Authorization: Bearer <token>`: the request acts as the token's user, narrowed to the token."""

import copy

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from api.models import ApiToken
from certconsole.access import backends


def bearer(request) -> str | None:
    """The bearer secret of the Authorization header, or None when there is none."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return secret.strip()


def token_user(token: ApiToken):
    """A copy of the token's user whose permissions are exactly the token's, in its project only.

    has_perm(), visible_to() and require() read the per-request permission cache
    (certconsole.access.backends), so filling it here makes every procedure check
    the token's rights, never the user's full ones. The copy is never saved.
    """
    user = copy.copy(token.user)
    user.is_superuser = False  # a platform administrator's token is still one role in one project
    user.is_staff = False
    backends.restrict_permissions(user, token.project_id, token.permissions())
    user.api_token = token
    user.save = _refuse_save
    return user


def _refuse_save(*args, **kwargs):
    raise RuntimeError("A token's view of its user is never saved.")


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        secret = bearer(request)
        if secret is None:
            return None
        if secret.startswith("ccf_"):
            raise exceptions.AuthenticationFailed("Fetch tokens only work at /api/v1/fetch/.")
        token = ApiToken.find(secret)
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        token.touch()
        return token_user(token), token

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "api.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "An API token (cct_…)."}
