"""Prometheus metrics at /metrics, named like cert-manager's where the meaning is the same.

Gauges are read from the database at each scrape (one process or many, the numbers agree);
only the HTTP latency histogram is per process. Access: an API token with the metrics flag,
settings.METRICS_TOKEN, or a client address in settings.METRICS_ALLOWED_NETWORKS.
"""

import hmac
import ipaddress
import time
from collections import Counter

from django.conf import settings
from django.db.models import Count, OuterRef, Subquery, Window
from django.db.models.functions import RowNumber
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from api.authentication import bearer
from api.models import ApiToken

REGISTRY = CollectorRegistry(auto_describe=True)
HTTP_LATENCY = Histogram(
    "certconsole_http_request_duration_seconds",
    "Time to answer HTTP requests, by method, URL name and status class.",
    ["method", "view", "status"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


class LatencyMiddleware:
    """Observes every request in HTTP_LATENCY; labels stay bounded (URL names, status class)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = match.view_name if match is not None and match.view_name else "unmatched"
        method = request.method if request.method in METHODS else "other"
        HTTP_LATENCY.labels(method, view, f"{response.status_code // 100}xx").observe(
            time.perf_counter() - started
        )
        return response


def _certificate_metrics():
    from inventory.models import Certificate, ExpiryStatus

    now = timezone.now()
    by_status = GaugeMetricFamily(
        "certconsole_certificates",
        "Certificates by project and status.",
        labels=["project", "status"],
    )
    for status in ExpiryStatus.values:
        rows = _count(Certificate.objects.with_status(status, now), "project__slug")
        for slug, n in sorted(rows):
            by_status.add_metric([slug, status], n)
    yield by_status

    limit = settings.METRICS_MAX_CERTIFICATES
    soonest = (
        Certificate.objects.exclude(not_after=None)
        .annotate(rank=Window(RowNumber(), partition_by="project_id", order_by=["not_after", "id"]))
        .filter(rank__lte=limit)
        .values("project__slug", "name", "not_after", "revoked")
    )
    expiry = GaugeMetricFamily(
        "certconsole_certificate_expiration_timestamp_seconds",
        f"When the certificate expires (Unix time); the {limit} soonest per project.",
        labels=["project", "name"],
    )
    ready = GaugeMetricFamily(
        "certconsole_certificate_ready_status",
        "1 for the condition the certificate is in: True (valid, not revoked) or False.",
        labels=["project", "name", "condition"],
    )
    for row in soonest:
        labels = [row["project__slug"], row["name"]]
        expiry.add_metric(labels, row["not_after"].timestamp())
        ok = not row["revoked"] and row["not_after"] > now
        ready.add_metric([*labels, "True"], 1 if ok else 0)
        ready.add_metric([*labels, "False"], 0 if ok else 1)
    yield expiry
    yield ready


def _count(queryset, field: str):
    return queryset.order_by().values_list(field).annotate(n=Count("id")).values_list(field, "n")


def _state_metric(name: str, help_text: str, queryset) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_text, labels=["project", "state"])
    rows = queryset.order_by().values_list("project__slug", "state").annotate(n=Count("id"))
    for slug, state, n in rows.values_list("project__slug", "state", "n"):
        family.add_metric([slug, state], n)
    return family


def _order_metric(queryset) -> GaugeMetricFamily:
    """Order outcomes, new certificates and renewals apart."""
    family = GaugeMetricFamily(
        "certconsole_orders",
        "Orders by project, state and kind (new or renewal).",
        labels=["project", "state", "kind"],
    )
    rows = queryset.order_by().values_list("project__slug", "state", "is_renewal")
    for slug, state, renewal, n in rows.annotate(n=Count("id")).values_list(
        "project__slug", "state", "is_renewal", "n"
    ):
        family.add_metric([slug, state, "renewal" if renewal else "new"], n)
    return family


def _check_metrics():
    from deployments.models import Binding, EndpointCheck

    latest = EndpointCheck.objects.filter(binding=OuterRef("pk")).order_by("-checked_at")
    bindings = Binding.objects.annotate(
        ok=Subquery(latest.values("ok")[:1]), drift=Subquery(latest.values("drift")[:1])
    ).values_list("project__slug", "ok", "drift")
    results = GaugeMetricFamily(
        "certconsole_endpoint_check_result",
        "Bindings by the result of their latest live TLS check (ok, failed, unchecked).",
        labels=["project", "result"],
    )
    drift = GaugeMetricFamily(
        "certconsole_endpoint_drift",
        "Bindings whose latest check saw another certificate than the bound one.",
        labels=["project"],
    )
    outcome, drifted = Counter(), Counter()
    for slug, ok, has_drift in bindings:
        outcome[(slug, "unchecked" if ok is None else "ok" if ok else "failed")] += 1
        drifted[slug] += bool(has_drift)
    for (slug, result), n in sorted(outcome.items()):
        results.add_metric([slug, result], n)
    for slug, n in sorted(drifted.items()):
        drift.add_metric([slug], n)
    return [results, drift]


def _queue_metrics():
    import django_rq
    from rq.registry import FailedJobRegistry

    depth = GaugeMetricFamily("certconsole_queue_jobs", "Jobs waiting per queue.", labels=["queue"])
    failed = GaugeMetricFamily(
        "certconsole_queue_failed_jobs", "Failed jobs kept per queue.", labels=["queue"]
    )
    up = GaugeMetricFamily("certconsole_queue_up", "1 when Redis answered this scrape.")
    try:
        for name in settings.RQ_QUEUES:
            queue = django_rq.get_queue(name)
            depth.add_metric([name], queue.count)
            failed.add_metric([name], FailedJobRegistry(queue=queue).count)
        up.add_metric([], 1)
    except Exception:  # Redis down must not break the other metrics
        up.add_metric([], 0)
        return [up]
    return [depth, failed, up]


class DatabaseCollector:
    def collect(self):
        from deployments.models import Deployment
        from orders.models import Order

        yield from _certificate_metrics()
        yield _order_metric(Order.objects)
        yield _state_metric(
            "certconsole_deployments", "Deployments by project and state.", Deployment.objects
        )
        yield from _check_metrics()
        yield from _queue_metrics()

    def describe(self):
        return []


DB_REGISTRY = CollectorRegistry(auto_describe=False)
DB_REGISTRY.register(DatabaseCollector())


def allowed(request: HttpRequest) -> bool:
    """A metrics token (API token flag or settings.METRICS_TOKEN), or an allowed network."""
    secret = bearer(request)
    if secret:
        configured = settings.METRICS_TOKEN
        if configured and hmac.compare_digest(secret.encode(), configured.encode()):
            return True
        token = ApiToken.find(secret)
        if token is not None and token.metrics:
            token.touch()
            return True
        return False
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net) for net in settings.METRICS_ALLOWED_NETWORKS)


@csrf_exempt
@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not allowed(request):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    payload = generate_latest(DB_REGISTRY) + generate_latest(REGISTRY)
    return HttpResponse(payload, content_type=CONTENT_TYPE_LATEST)
