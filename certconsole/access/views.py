"""Projects, members and the project switcher."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from certconsole.access.current import select_project, user_projects
from certconsole.access.forms import AddMemberForm, ProjectForm, ReasonForm, SwitchProjectForm
from certconsole.access.models import LastAdminError, Membership, Project
from certconsole.access.permissions import get_object_for_user
from certconsole.access.reauth import needs_second_factor
from certconsole.access.roles import ROLE_DESCRIPTIONS, Role


@require_GET
@login_required
def project_list(request):
    projects = Project.objects.member_of(request.user).prefetch_related("memberships")
    return render(request, "access/project_list.html", {"projects": projects})


@require_http_methods(["GET", "POST"])
@login_required
def project_create(request):
    if not request.user.is_superuser:
        raise PermissionDenied("Only platform administrators create projects.")
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        project = Project.create(request.user, data["slug"], data["name"], data["description"])
        messages.success(request, f"Project “{project.name}” created.")
        return redirect(project)
    return render(request, "access/project_form.html", {"form": form})


@require_GET
@login_required
def project_detail(request, slug):
    project = get_object_for_user(request, Project, "project.view", slug=slug)
    context = {**_detail_context(request, project), "form": AddMemberForm()}
    return render(request, "access/project_detail.html", context)


def _detail_context(request, project) -> dict:
    memberships = project.memberships.select_related("user").order_by("user__username", "role")
    return {
        "project": project,
        "memberships": memberships,
        "can_manage": request.user.has_perm("member.manage", project),
        "roles": [(Role(r).label, ROLE_DESCRIPTIONS[r]) for r in Role.values],
    }


@require_POST
@login_required
def member_add(request, slug):
    project = get_object_for_user(request, Project, "member.manage", slug=slug)
    if needs_second_factor(request):
        return _confirm_first(request, project)
    form = AddMemberForm(request.POST)
    if not form.is_valid():
        context = {**_detail_context(request, project), "form": form}
        return render(request, "access/project_detail.html", context, status=400)
    role = form.cleaned_data["role"]
    project.grant_role(request.user, form.user, role, form.cleaned_data["reason"])
    messages.success(request, f"{form.user.username} is now {Role(role).label}.")
    return redirect(project)


@require_POST
@login_required
def member_remove(request, slug, membership_id):
    project = get_object_for_user(request, Project, "member.manage", slug=slug)
    membership = get_object_or_404(Membership, pk=membership_id, project=project)
    if needs_second_factor(request):
        return _confirm_first(request, project)
    form = ReasonForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        project.revoke_role(request.user, membership, reason)
    except LastAdminError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request, f"{membership.user.username} is no longer {membership.get_role_display()}."
        )
    return redirect(project)


def _confirm_first(request, project):
    """Role changes need a second factor proven in the last 5 minutes (when the user has one)."""
    from certconsole.access.security_views import step_up_redirect

    return step_up_redirect(request, project.get_absolute_url())


@require_POST
@login_required
def switch_project(request):
    form = SwitchProjectForm(request.POST)
    if form.is_valid():
        slug = form.cleaned_data["project"]
        for project in user_projects(request.user):
            if project.slug == slug:
                select_project(request, project)
                break
    target = form.data.get("next") or "/"
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = "/"
    return redirect(target)
