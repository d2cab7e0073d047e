"""Audit pages for the security team: browse, inspect, export."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET

from certconsole.access.models import Project
from certconsole.audit import record
from certconsole.audit.export import csv_lines, jsonl_lines
from certconsole.audit.filters import AuditEventFilter
from certconsole.audit.models import AuditEvent
from certconsole.htmx import template_for

PAGE_SIZE = 50


def _filtered(request, perm="audit.view"):
    events = AuditEvent.objects.visible_to(request.user, perm)
    return AuditEventFilter(request.GET or None, queryset=events, user=request.user)


def _ensure_auditor(request, perm="audit.view"):
    """Only people who may read some project's audit log get the pages at all."""
    user = request.user
    if user.is_superuser:
        return
    projects = Project.objects.visible_to(user, perm)
    if not projects.exists():
        raise PermissionDenied("Reading the audit log needs the Auditor or ProjectAdmin role.")


def _list_context(request, filterset) -> dict:
    invalid = filterset.is_bound and not filterset.is_valid()
    events = AuditEvent.objects.none() if invalid else filterset.qs.order_by("-id")
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return {"filter": filterset, "page": page, "query": query.urlencode()}


@require_GET
@login_required
def event_list(request):
    _ensure_auditor(request)
    filterset = _filtered(request)
    context = _list_context(request, filterset)
    return render(request, template_for(request, "audit/event_list.html", "results"), context)


@require_GET
@login_required
def event_detail(request, pk):
    _ensure_auditor(request)
    event = AuditEvent.objects.visible_to(request.user, "audit.view").filter(pk=pk).first()
    if event is None:
        raise Http404("No such audit event in your projects.")
    return render(request, "audit/event_detail.html", {"event": event})


@require_GET
@login_required
def event_export(request, fmt):
    _ensure_auditor(request, "audit.export")
    filterset = _filtered(request, "audit.export")
    if filterset.form.is_bound and not filterset.is_valid():
        return render(
            request, "audit/event_list.html", _list_context(request, filterset), status=400
        )
    params = {k: v for k, v in request.GET.items() if v}
    record(request.user, "audit.export", format=fmt, filters=params)
    events = filterset.qs.order_by("id").iterator(chunk_size=2000)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    if fmt == "csv":
        response = StreamingHttpResponse(csv_lines(events), content_type="text/csv")
    else:
        response = StreamingHttpResponse(jsonl_lines(events), content_type="application/jsonl")
    response["Content-Disposition"] = content_disposition_header(True, f"audit-{stamp}.{fmt}")
    return response
