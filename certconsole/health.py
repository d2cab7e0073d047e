"""Liveness and readiness probes for load balancers and orchestrators."""

import django_rq
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


@require_GET
@never_cache
def healthz(request):
    """The process is up and answering."""
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any driver error means "not ready"
        return f"{type(exc).__name__}: {exc}"[:300]
    return None


def _check_redis() -> str | None:
    try:
        redis = django_rq.get_connection("default")
        redis.connection_pool.connection_kwargs.setdefault("socket_connect_timeout", 2)
        redis.ping()
    except Exception as exc:  # any client error means "not ready"
        return f"{type(exc).__name__}: {exc}"[:300]
    return None


@require_GET
@never_cache
def readyz(request):
    """Database and Redis are reachable; 503 names the one that is not."""
    checks = {"database": _check_database(), "redis": _check_redis()}
    failed = {name: error for name, error in checks.items() if error}
    body = {
        "status": "ok" if not failed else "unavailable",
        "checks": {name: ("ok" if error is None else "failed") for name, error in checks.items()},
    }
    if failed:
        body["errors"] = failed
    return JsonResponse(body, status=503 if failed else 200)
