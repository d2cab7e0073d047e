"""The notifications page (what was sent, what is due next) and the policy editor."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from certconsole.access.current import current_project
from certconsole.access.models import Project
from certconsole.access.permissions import get_object_for_user
from certconsole.htmx import template_for
from inventory.forms_notifications import NotificationPolicyForm
from inventory.models import Certificate, NotificationLog, NotificationPolicy
from inventory.reminders import next_threshold

SCHEDULE_ROWS = 50
LOG_PAGE = 50


@require_GET
@login_required
def notification_list(request: HttpRequest) -> HttpResponse:
    everything = request.GET.get("scope") == "all"
    project = None if everything else current_project(request)
    logs = NotificationLog.objects.visible_to(request.user, "certificate.view")
    certificates = Certificate.objects.visible_to(request.user, "certificate.view")
    if project is not None:
        logs, certificates = logs.filter(project=project), certificates.filter(project=project)
    logs = logs.select_related("certificate", "project").only(
        *LOG_FIELDS, "certificate__name", "project__slug"
    )
    page = Paginator(logs, LOG_PAGE).get_page(request.GET.get("page"))
    context = {
        "project": project,
        "everything": everything,
        "page": page,
        "query": "scope=all" if everything else "",
        "schedule": _schedule(certificates),
        "policy": NotificationPolicy.for_project(project) if project else None,
        "can_manage": project is not None and request.user.has_perm("project.manage", project),
    }
    template = template_for(request, "inventory/notifications.html", "log")
    return render(request, template, context)


LOG_FIELDS = (
    "kind",
    "threshold",
    "channel",
    "recipient",
    "state",
    "attempts",
    "error",
    "created_at",
    "sent_at",
    "certificate_id",
    "project_id",
)


def _schedule(certificates) -> list[tuple]:
    """The next reminder of the certificates expiring soonest: (cert, threshold, when)."""
    now = timezone.now()
    soon = list(
        certificates.filter(revoked=False, current_version__isnull=False, not_after__gt=now)
        .only("id", "name", "not_after", "project_id")
        .order_by("not_after")[: SCHEDULE_ROWS * 4]
    )
    policies = NotificationPolicy.objects.filter(project_id__in={c.project_id for c in soon})
    by_project = {policy.project_id: policy for policy in policies}
    planned = []
    for cert in soon:
        policy = by_project.get(cert.project_id) or NotificationPolicy()
        if not policy.enabled:
            continue
        upcoming = next_threshold(cert.not_after, policy.thresholds, now)
        if upcoming is not None:
            threshold, when = upcoming
            planned.append((cert, threshold, when, max((when - now).days, 0)))
    planned.sort(key=lambda row: row[2])
    return planned[:SCHEDULE_ROWS]


@require_http_methods(["GET", "POST"])
@login_required
def notification_policy(request: HttpRequest, slug: str) -> HttpResponse:
    project = get_object_for_user(request, Project, "project.manage", slug=slug)
    policy = NotificationPolicy.for_project(project)
    form = NotificationPolicyForm.for_policy(policy, request.POST or None)
    if request.method == "POST" and form.is_valid():
        policy.change(request.user, **form.changes())
        messages.success(request, f"Notification policy of “{project.name}” saved.")
        return redirect("inventory:notification-list")
    status = 400 if request.method == "POST" else 200
    context = {"project": project, "policy": policy, "form": form}
    return render(request, "inventory/notifications_policy.html", context, status=status)


urlpatterns = [
    path("notifications/", notification_list, name="notification-list"),
    path("notifications/<slug:slug>/policy/", notification_policy, name="notification-policy"),
]
