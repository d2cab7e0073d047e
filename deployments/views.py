"""Deployments in the browser: targets, bindings, rollouts with live progress, endpoints.

Every view looks its object up through get_object_for_user and calls the procedures in
deployments.rollout / monitoring / discovery, which check permissions again and audit.
"""

from itertools import groupby

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.template.loader import render_to_string
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling

from certconsole.access.current import current_project
from certconsole.access.models import Project
from certconsole.access.permissions import get_object_for_user
from certconsole.audit import record
from certconsole.audit.middleware import client_ip
from certconsole.htmx import is_partial, template_for
from deployments import discovery, grants, monitoring, rollout
from deployments.drivers import DriverError, get_driver
from deployments.forms import (
    BindingForm,
    CheckNowForm,
    DeploymentStartForm,
    DiscoveryForm,
    EndpointForm,
    HostKeyApprovalForm,
    ReasonForm,
    TargetEditForm,
    TargetForm,
    ssh_fingerprint,
)
from deployments.models import (
    Binding,
    Deployment,
    DeploymentStep,
    EndpointCheck,
    MonitoredEndpoint,
    Target,
)
from inventory.models import Certificate

PAGE_SIZE = 50
# What a procedure raises when it refuses (wrong state, nothing to roll back to, bad option):
# shown to the user as a sentence, never a 500.
REFUSALS = (ValueError, DriverError, ValidationError)
STEP_PROGRESS = {
    DeploymentStep.State.WAITING: 0,
    DeploymentStep.State.PUSHING: 1,
    DeploymentStep.State.VERIFYING: 2,
    DeploymentStep.State.AWAITING_LIVE_CHECK: 2,
}
DISCOVERY_STATUSES = ("imported", "known", "unreachable", "rejected")
Step = DeploymentStep.State
STEP_FINAL = {Step.DONE, Step.FAILED, Step.ROLLED_BACK, Step.SKIPPED}


def _refusal(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return getattr(exc, "message", None) or str(exc)


def _projects(user, perm: str) -> QuerySet[Project]:
    """The projects where the user holds perm; 403 when there is none."""
    projects = Project.objects.visible_to(user, perm).order_by("name")
    if not projects.exists():
        raise PermissionDenied("You may not do this in any of your projects.")
    return projects


def _initial_project(request) -> dict:
    current = current_project(request)
    return {"project": current.pk if current else None}


def _describe(target: Target) -> str:
    """The driver's one line about where the target writes, or why its options are wrong."""
    try:
        return get_driver(target.kind, target.options).describe()
    except DriverError as exc:
        return f"Options need attention: {exc.message}"
    except (TypeError, ValueError) as exc:  # options edited outside the console
        return f"Options need attention: {exc}"


def _with_progress(deployments: QuerySet[Deployment]) -> QuerySet[Deployment]:
    return (
        deployments.select_related("certificate", "version", "started_by")
        .annotate(
            total=Count("steps"),
            done=Count("steps", filter=Q(steps__state=DeploymentStep.State.DONE)),
        )
        .order_by("-created_at", "-id")
    )


# Targets


@require_GET
@login_required
def target_list(request: HttpRequest) -> HttpResponse:
    targets = (
        Target.objects.visible_to(request.user, "target.view")
        .select_related("project")
        .annotate(binding_count=Count("bindings"))
        .order_by("project__name", "name")
    )
    page = Paginator(targets, PAGE_SIZE).get_page(request.GET.get("page"))
    for target in page.object_list:
        target.where = _describe(target)
    can_create = Project.objects.visible_to(request.user, "target.manage").exists()
    context = {"page": page, "can_create": can_create}
    return render(request, "deployments/target_list.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def target_create(request: HttpRequest) -> HttpResponse:
    projects = _projects(request.user, "target.manage")
    form = TargetForm(request.POST or None, projects=projects, initial=_initial_project(request))
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            target = rollout.create_target(
                request.user,
                data["project"],
                data["name"],
                data["kind"],
                data["options"],
                credentials=data["credentials"] or None,
            )
        except REFUSALS as exc:
            form.add_error("options", _refusal(exc))
        else:
            stored = " Credentials stored (encrypted)." if target.has_credentials else ""
            messages.success(request, f"Target “{target.name}” created.{stored}")
            return redirect(target)
    status = 400 if form.is_bound else 200
    return render(request, "deployments/target_form.html", {"form": form}, status=status)


def _target_context(request, target: Target, **extra) -> dict:
    bindings = target.bindings.select_related("certificate", "deployed_version")
    context = {
        "target": target,
        "where": _describe(target),
        "bindings": bindings,
        "can_manage": request.user.has_perm("target.manage", target),
        "pinned_fingerprint": "",
        **extra,
    }
    if request.user.has_perm("deployment.view", target):
        checks = EndpointCheck.objects.filter(binding__target=target).select_related("binding")
        context["checks"] = checks[:20]
    if target.kind == Target.Kind.SSH and target.options.get("host_key"):
        context["pinned_fingerprint"] = _fingerprint(target.options["host_key"])
    return context


def _fingerprint(key_line: str) -> str:
    try:
        return ssh_fingerprint(key_line)
    except ValidationError:
        return "unreadable (fix options.host_key)"


@require_GET
@login_required
def target_detail(request: HttpRequest, pk: int) -> HttpResponse:
    target = get_object_for_user(request, Target, "target.view", pk=pk)
    return render(request, "deployments/target_detail.html", _target_context(request, target))


@require_http_methods(["GET", "POST"])
@login_required
def target_edit(request: HttpRequest, pk: int) -> HttpResponse:
    target = get_object_for_user(request, Target, "target.manage", pk=pk)
    form = TargetEditForm(request.POST or None, target=target)
    if request.method == "POST" and form.is_valid():
        changed = form.save(request.user)
        messages.success(request, "Saved." if changed else "Nothing changed.")
        return redirect(target)
    status = 400 if form.is_bound else 200
    context = {"target": target, "form": form}
    return render(request, "deployments/target_edit.html", context, status=status)


@require_POST
@login_required
def target_fetch_host_key(request: HttpRequest, pk: int) -> HttpResponse:
    target = get_object_for_user(request, Target, "target.manage", pk=pk)
    from deployments.drivers.ssh import fetch_host_key

    if target.kind != Target.Kind.SSH:
        context = _target_context(request, target, host_key_error="Only SSH targets have one.")
        return render(request, "deployments/target_detail.html", context, status=400)
    try:
        options = get_driver(target.kind, target.options).options
        fetched = fetch_host_key(options.host, options.port, timeout=5)
    except DriverError as exc:
        context = _target_context(request, target, host_key_error=exc.message)
        return render(request, "deployments/target_detail.html", context)
    approval = HostKeyApprovalForm(
        initial={"key_line": fetched.line, "fingerprint": fetched.fingerprint_sha256}
    )
    context = _target_context(request, target, fetched=fetched, approval=approval)
    return render(request, "deployments/target_detail.html", context)


@require_POST
@login_required
def target_approve_host_key(request: HttpRequest, pk: int) -> HttpResponse:
    target = get_object_for_user(request, Target, "target.manage", pk=pk)
    form = HostKeyApprovalForm(request.POST)
    if target.kind != Target.Kind.SSH or not form.is_valid():
        error = " ".join(form.non_field_errors()) or "Fetch the host key again, then approve it."
        context = _target_context(request, target, host_key_error=error)
        return render(request, "deployments/target_detail.html", context, status=400)
    _pin_host_key(request.user, target, form.cleaned_data["key_line"])
    messages.success(request, f"Host key {form.cleaned_data['fingerprint']} approved and pinned.")
    return redirect(target)


def _pin_host_key(actor, target: Target, key_line: str) -> None:
    """Pin the approved key into options.host_key; the driver then refuses any other key."""
    before = target.options.get("host_key", "")
    with transaction.atomic():
        target.options = {**target.options, "host_key": key_line}
        target.save(update_fields=["options", "updated_at"])
        record(
            actor,
            "target.approve_host_key",
            target,
            fingerprint=ssh_fingerprint(key_line),
            replaced=_fingerprint(before) if before else "",
        )


# Bindings and the certificate's deployments


@require_GET
@login_required
def certificate_deployments(request: HttpRequest, pk: int) -> HttpResponse:
    cert = get_object_for_user(request, Certificate, "deployment.view", pk=pk)
    user = request.user
    deployments = _with_progress(cert.deployments.all())[:10]
    context = {
        "cert": cert,
        "bindings": cert.bindings.select_related("target", "deployed_version")
        if user.has_perm("target.view", cert)
        else None,
        "deployments": deployments,
        "can_manage": user.has_perm("target.manage", cert),
        "can_run": user.has_perm("deployment.run", cert),
        "can_rollback": user.has_perm("deployment.rollback", cert),
    }
    template = template_for(request, "deployments/certificate_deployments.html", "panel")
    return render(request, template, context)


@require_http_methods(["GET", "POST"])
@login_required
def binding_create(request: HttpRequest, pk: int) -> HttpResponse:
    cert = get_object_for_user(request, Certificate, "target.manage", pk=pk)
    form = BindingForm(request.POST or None, certificate=cert)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        host, port = data["probe"]
        try:
            rollout.create_binding(
                request.user,
                cert,
                data["target"],
                data["sni_names"],
                host,
                port,
                wave=data["wave"],
                auto_redeploy=data["auto_redeploy"],
            )
        except REFUSALS as exc:
            form.add_error("sni_names", _refusal(exc))
        else:
            messages.success(request, f"{cert.name} is now bound to {data['target'].name}.")
            return redirect(cert)
    status = 400 if form.is_bound else 200
    context = {"cert": cert, "form": form}
    return render(request, "deployments/binding_form.html", context, status=status)


# Deployments


@require_GET
@login_required
def deployment_list(request: HttpRequest) -> HttpResponse:
    deployments = Deployment.objects.visible_to(request.user, "deployment.view")
    state = request.GET.get("state", "")
    if state in Deployment.State.values:
        deployments = deployments.filter(state=state)
    page = Paginator(_with_progress(deployments), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "state": state,
        "states": Deployment.State.choices,
        "query": f"state={state}" if state else "",
    }
    return render(request, "deployments/deployment_list.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def deployment_start(request: HttpRequest, pk: int) -> HttpResponse:
    cert = get_object_for_user(request, Certificate, "deployment.run", pk=pk)
    form = DeploymentStartForm(request.POST or None, certificate=cert)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            deployment = rollout.start_deployment(
                request.user,
                cert,
                data["version"],
                bindings=list(data["bindings"]),
                pause_between_waves=data["pause_between_waves"],
                reason=data["reason"],
            )
        except REFUSALS as exc:
            form.add_error(None, _refusal(exc))
        else:
            return redirect(deployment)
    status = 400 if form.is_bound else 200
    context = {"cert": cert, "form": form}
    return render(request, "deployments/deployment_start.html", context, status=status)


def _deployment_context(request, deployment: Deployment, **extra) -> dict:
    steps = list(deployment.steps.select_related("binding__target", "previous_version"))
    for step in steps:
        step.progress = 3 if step.state in STEP_FINAL else STEP_PROGRESS.get(step.state, 0)
    waves = []
    for number, group in groupby(steps, key=lambda s: s.wave):
        group = list(group)
        finished = sum(s.state in STEP_FINAL for s in group)
        done = sum(s.state == DeploymentStep.State.DONE for s in group)
        failed = any(s.state in ("failed", "rolled_back") for s in group)
        waves.append(
            {
                "number": number,
                "steps": group,
                "total": len(group),
                "finished": finished,
                "done": done,
                "failed": failed,
            }
        )
    user = request.user
    return {
        "deployment": deployment,
        "cert": deployment.certificate,
        "waves": waves,
        "total": len(steps),
        "done": sum(s.state == DeploymentStep.State.DONE for s in steps),
        "can_run": user.has_perm("deployment.run", deployment),
        "can_rollback": user.has_perm("deployment.rollback", deployment),
        "cancel_form": extra.pop("cancel_form", None) or ReasonForm(),
        **extra,
    }


def _get_deployment(request, perm: str, pk: int) -> Deployment:
    queryset = Deployment.objects.select_related("certificate", "version", "started_by")
    return get_object_for_user(request, queryset, perm, pk=pk)


@require_GET
@login_required
def deployment_detail(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = _get_deployment(request, "deployment.view", pk)
    context = _deployment_context(request, deployment)
    if is_partial(request):
        template = "deployments/deployment_detail.html#progress"
        if deployment.finished:
            return HttpResponseStopPolling(render_to_string(template, context, request))
        return render(request, template, context)
    return render(request, "deployments/deployment_detail.html", context)


@require_POST
@login_required
def deployment_continue(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = _get_deployment(request, "deployment.run", pk)
    try:
        rollout.continue_deployment(request.user, deployment)
    except REFUSALS as exc:
        messages.error(request, _refusal(exc))
    else:
        messages.success(request, "Continuing with the next wave.")
    return redirect(deployment)


@require_POST
@login_required
def deployment_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    deployment = _get_deployment(request, "deployment.run", pk)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        context = _deployment_context(request, deployment, cancel_form=form)
        return render(request, "deployments/deployment_detail.html", context, status=400)
    try:
        rollout.cancel_deployment(request.user, deployment, form.cleaned_data["reason"])
    except REFUSALS as exc:
        messages.error(request, _refusal(exc))
    else:
        messages.success(request, "Deployment cancelled: no further bindings will be changed.")
    return redirect(deployment)


@require_http_methods(["GET", "POST"])
@login_required
def certificate_rollback(request: HttpRequest, pk: int) -> HttpResponse:
    cert = get_object_for_user(request, Certificate, "deployment.rollback", pk=pk)
    form = ReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            deployment = rollout.rollback_certificate(
                request.user, cert, form.cleaned_data["reason"]
            )
        except REFUSALS as exc:
            form.add_error(None, _refusal(exc))
        else:
            messages.success(request, "Rolling back: the previous version is being deployed.")
            return redirect(deployment)
    context = {
        "cert": cert,
        "form": form,
        "previous": rollout.previous_deployed_version(cert),
        "bindings": cert.bindings.select_related("target", "deployed_version"),
    }
    status = 400 if form.is_bound else 200
    return render(request, "deployments/rollback_confirm.html", context, status=status)


# Endpoints


def _with_latest_checks(rows: list, field: str) -> None:
    """Attach row.latest: the checks of the newest round (one per SNI name) of each row."""
    stamps = {r.pk: r.latest_at for r in rows if r.latest_at}
    checks = EndpointCheck.objects.filter(
        **{f"{field}__in": list(stamps)}, checked_at__in=set(stamps.values())
    ).order_by("server_name")
    by_row: dict[int, list[EndpointCheck]] = {}
    now = timezone.now()
    for check in checks:
        owner = getattr(check, f"{field}_id")
        if check.checked_at == stamps.get(owner):
            check.days_left = (check.not_after - now).days if check.not_after else None
            by_row.setdefault(owner, []).append(check)
    for row in rows:
        row.latest = by_row.get(row.pk, [])


def _newest(field: str):
    newest = EndpointCheck.objects.filter(**{field: OuterRef("pk")}).order_by("-checked_at")
    return Subquery(newest.values("checked_at")[:1])


@require_GET
@login_required
def endpoint_list(request: HttpRequest) -> HttpResponse:
    user = request.user
    bindings = list(
        Binding.objects.visible_to(user, "deployment.view")
        .select_related("certificate", "target")
        .annotate(latest_at=_newest("binding"))
        .order_by("certificate__name", "wave", "id")
    )
    endpoints = list(
        MonitoredEndpoint.objects.visible_to(user, "deployment.view").annotate(
            latest_at=_newest("endpoint")
        )
    )
    _with_latest_checks(bindings, "binding")
    _with_latest_checks(endpoints, "endpoint")
    checks = [c for row in bindings + endpoints for c in row.latest]
    check_projects = Project.objects.visible_to(user, "deployment.run").order_by("name")
    context = {
        "bindings": bindings,
        "endpoints": endpoints,
        "none_checked": [None],  # one "not checked yet" row for rows without checks
        "drifting": sum(c.drift for c in checks),
        "failing": sum(not c.ok for c in checks),
        "check_form": CheckNowForm(projects=check_projects, initial=_initial_project(request))
        if check_projects.exists()
        else None,
        "can_manage": Project.objects.visible_to(user, "target.manage").exists(),
    }
    return render(request, "deployments/endpoint_list.html", context)


@require_POST
@login_required
def endpoint_check(request: HttpRequest) -> HttpResponse:
    form = CheckNowForm(request.POST, projects=_projects(request.user, "deployment.run"))
    if not form.is_valid():
        messages.error(request, "Choose one of your projects to check.")
        return redirect("deployments:endpoint-list")
    project = form.cleaned_data["project"]
    checks = monitoring.check_endpoints(project=project)
    problems = sum(c.drift or not c.ok for c in checks)
    text = f"Checked {len(checks)} name{pluralize(len(checks))} in {project}"
    if problems:
        messages.warning(request, f"{text}: {problems} need{pluralize(problems, 's,')} attention.")
    else:
        messages.success(request, f"{text}: all as expected.")
    return redirect("deployments:endpoint-list")


@require_http_methods(["GET", "POST"])
@login_required
def endpoint_create(request: HttpRequest) -> HttpResponse:
    projects = _projects(request.user, "target.manage")
    form = EndpointForm(request.POST or None, projects=projects, initial=_initial_project(request))
    if request.method == "POST" and form.is_valid():
        endpoint = _watch(request.user, form.cleaned_data)
        if endpoint is None:
            form.add_error(None, "This endpoint is already watched in this project.")
        else:
            messages.success(request, f"Now watching {endpoint}; “Check now” checks it at once.")
            return redirect("deployments:endpoint-list")
    status = 400 if form.is_bound else 200
    return render(request, "deployments/endpoint_form.html", {"form": form}, status=status)


def _watch(actor, data: dict) -> MonitoredEndpoint | None:
    """Create the monitored endpoint (audited); None when it already exists."""
    host, port = data["address"]
    with transaction.atomic():
        endpoint, created = MonitoredEndpoint.objects.get_or_create(
            project=data["project"], host=host, port=port, server_name=data["server_name"]
        )
        if not created:
            return None
        record(actor, "endpoint.create", endpoint, address=f"{host}:{port}")
    return endpoint


@require_http_methods(["GET", "POST"])
@login_required
def discover(request: HttpRequest) -> HttpResponse:
    projects = _projects(request.user, "certificate.create")
    form = DiscoveryForm(request.POST or None, projects=projects, initial=_initial_project(request))
    result = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            result = discovery.discover(request.user, data["project"], data["entries"])
        except REFUSALS as exc:
            form.add_error("entries", _refusal(exc))
    status = 400 if form.is_bound and form.errors else 200
    counts = {s: sum(r["status"] == s for r in result or []) for s in DISCOVERY_STATUSES}
    context = {"form": form, "result": result, "counts": counts}
    return render(request, "deployments/discover.html", context, status=status)


@require_GET
@never_cache
def bundle_fetch(request: HttpRequest, token: str) -> HttpResponse:
    """A webhook receiver fetches its bundle once; the token in the URL is the credential."""
    try:
        payload = grants.redeem(token, client_ip(request))
    except grants.GrantError as exc:
        return JsonResponse({"error": {"code": exc.status, "message": str(exc)}}, status=exc.status)
    return JsonResponse(payload)  # never_cache: no-store, private
