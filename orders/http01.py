"""HTTP-01 served by the console: GET /.well-known/acme-challenge/<token> → key authorization.

The CA fetches this with the ordered domain in the Host header, so the path must answer
whatever the host: `AcmeChallengeMiddleware` (first in MIDDLEWARE) serves it before
Django validates the host; the view is the same answer for setups that list the hosts.
"""

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from orders.models import Challenge, Order

PREFIX = "/.well-known/acme-challenge/"
_SERVING = (Order.State.PENDING_VALIDATION, Order.State.VALIDATING)


def key_authorization(token: str) -> str | None:
    """The key authorization for a live HTTP-01 challenge with this token, or None."""
    if not token or len(token) > 200:
        return None
    return (
        Challenge.objects.filter(
            token=token, type="http-01", authorization__order__state__in=_SERVING
        )
        .exclude(key_authorization="")
        .values_list("key_authorization", flat=True)
        .first()
    )


@require_GET
def acme_challenge(request: HttpRequest, token: str) -> HttpResponse:
    body = key_authorization(token)
    if body is None:
        raise Http404("No such challenge.")
    return HttpResponse(body, content_type="text/plain")


class AcmeChallengeMiddleware:
    """Answer HTTP-01 requests for any Host header (the CA sends the ordered domain)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "GET" and request.path_info.startswith(PREFIX):
            body = key_authorization(request.path_info[len(PREFIX) :])
            if body is not None:
                return HttpResponse(body, content_type="text/plain")
        return self.get_response(request)
