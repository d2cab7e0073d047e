"""/api/v1/: the REST API (router names explicit for the URL × role matrix), schema, docs, fetch."""

from functools import cache

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.urls import path
from django.views.decorators.http import require_GET
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import SimpleRouter

from api import views
from api.fetch import fetch_bundle

app_name = "api"

router = SimpleRouter()
router.register("projects", views.ProjectViewSet, basename="project")
router.register("certificates", views.CertificateViewSet, basename="certificate")
router.register("orders", views.OrderViewSet, basename="order")
router.register("acme-accounts", views.AcmeAccountViewSet, basename="acme-account")
router.register("certificate-authorities", views.CertificateAuthorityViewSet, basename="ca")
router.register("targets", views.TargetViewSet, basename="target")
router.register("bindings", views.BindingViewSet, basename="binding")
router.register("deployments", views.DeploymentViewSet, basename="deployment")
router.register("endpoint-checks", views.EndpointCheckViewSet, basename="endpoint-check")
router.register("audit-events", views.AuditEventViewSet, basename="audit-event")


@cache
def _operations() -> list[dict]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = []
    for route, methods in schema["paths"].items():
        for method, op in methods.items():
            params = [p["name"] for p in op.get("parameters", []) if p.get("in") == "query"]
            operations.append(
                {
                    "method": method.upper(),
                    "path": route,
                    "tag": (op.get("tags") or [""])[0],
                    "summary": (op.get("description") or "").split("\n")[0],
                    "params": params,
                }
            )
    return sorted(operations, key=lambda o: (o["tag"], o["path"], o["method"]))


@require_GET
@login_required
def docs(request):
    """The operations of the schema, rendered on the server (no JavaScript, strict CSP holds)."""
    return render(request, "api/docs.html", {"operations": _operations()})


urlpatterns = [
    *router.urls,
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", docs, name="docs"),
    path("fetch/", fetch_bundle, name="fetch"),
]
