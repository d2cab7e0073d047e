"""Permission classes and throttling for the API: the catalogue decides, the token narrows."""

from rest_framework import exceptions, permissions, throttling


def api_token(request):
    """The ApiToken behind the request, or None for a signed-in browser session."""
    return getattr(request.user, "api_token", None)


class TokenScope(permissions.BasePermission):
    """Signed in (token or session); read-only tokens may only read.

    Object rights are checked by the catalogue (require() against the token's role,
    see authentication.token_user) in each view: 404 outside the project, 403 without.
    """

    message = "This token is read-only."

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            raise exceptions.NotAuthenticated()
        token = api_token(request)
        writes = request.method not in permissions.SAFE_METHODS
        return not (token is not None and token.read_only and writes)


class TokenRateThrottle(throttling.SimpleRateThrottle):
    """Each token has its own rate (ApiToken.rate_limit); sessions share a per-user rate."""

    scope = "api"

    def get_rate(self):
        return "600/min"

    def allow_request(self, request, view):
        token = api_token(request)
        self.rate = token.rate_limit if token is not None else self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        token = api_token(request)
        if token is not None:
            ident = f"token-{token.pk}"
        elif request.user and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}
