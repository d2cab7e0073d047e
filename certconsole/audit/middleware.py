"""Sets the audit context (source, IP, user agent) for each web request."""

from certconsole.audit.context import Source, audit_context


def client_ip(request) -> str | None:
    """The client address as the web server saw it."""
    return request.META.get("REMOTE_ADDR") or None


class AuditContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user_agent = request.META.get("HTTP_USER_AGENT", "")
        with audit_context(source=Source.WEB, ip=client_ip(request), user_agent=user_agent):
            return self.get_response(request)
