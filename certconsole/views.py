"""The landing page."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from certconsole.access.backends import project_permissions
from certconsole.access.current import user_projects
from certconsole.access.models import Membership
from certconsole.audit.models import AuditEvent


@require_GET
@login_required
def dashboard(request):
    projects = user_projects(request.user)
    recent = AuditEvent.objects.visible_to(request.user, "audit.view").order_by("-id")[:10]
    roles: dict[int, list[str]] = {}
    for membership in Membership.objects.filter(user=request.user):
        roles.setdefault(membership.project_id, []).append(membership.get_role_display())
    context = {
        "projects": [(project, sorted(roles.get(project.pk, []))) for project in projects],
        "recent_events": recent,
        "can_audit": any("audit.view" in project_permissions(request.user, p.pk) for p in projects)
        or request.user.is_superuser,
    }
    return render(request, "dashboard.html", context)
