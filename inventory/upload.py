"""Uploading certificates and keys in the browser: a preview of what would happen, then confirm.

The preview plans every file (nothing is written) and stages the bytes,
encrypted; the confirmation re-plans from the staged bytes and applies each
file in its own transaction, so one bad file loses nothing of the others.
"""

import logging

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from certconsole.access.current import current_project
from certconsole.access.models import Project
from certconsole.access.permissions import require
from certconsole.htmx import is_partial, template_for
from inventory import staging
from inventory.forms_upload import UploadForm
from inventory.importing import FilePlan, FileResult, apply_plan, plan_file
from inventory.models import CertificateVersion

logger = logging.getLogger(__name__)

TEMPLATE = "inventory/upload.html"
FILE_STATUSES = ("imported", "duplicate", "rejected")
INTERNAL_ERROR = "This file could not be processed because of an internal error (it was logged)."


@require_http_methods(["GET", "POST"])
@login_required
def upload(request: HttpRequest) -> HttpResponse:
    projects = _upload_projects(request.user)
    current = current_project(request)
    form = UploadForm(
        request.POST or None,
        request.FILES or None,
        projects=projects,
        initial={"project": current.pk if current else None},
    )
    if request.method == "GET":
        return render(request, TEMPLATE, {"form": form})
    if not form.is_valid():
        # htmx swaps only 2xx answers; the full page says 400.
        status = 200 if is_partial(request) else 400
        return render(
            request, template_for(request, TEMPLATE, "preview"), {"form": form}, status=status
        )
    context = {"form": form, **_preview(request.user, form)}
    return render(request, template_for(request, TEMPLATE, "preview"), context)


@require_POST
@login_required
def upload_confirm(request: HttpRequest) -> HttpResponse:
    _upload_projects(request.user)
    staged = staging.claim(request.user, request.POST.get("token", ""))
    if staged is None:
        return render(request, TEMPLATE, {"expired": True}, status=400)
    require(request.user, "certificate.create", staged.project)
    store = set(request.POST.getlist("store_unmatched"))
    results = [
        _import_staged(request.user, staged, file, store_keys=str(index) in store)
        for index, file in enumerate(staged.files)
    ]
    context = {
        "results": _result_rows(staged.project, results),
        "project": staged.project,
        "counts": {s: sum(r.status == s for r in results) for s in FILE_STATUSES},
    }
    return render(request, TEMPLATE, context)


def _upload_projects(user) -> QuerySet[Project]:
    """The projects the user may upload into; 403 when there is none."""
    projects = Project.objects.visible_to(user, "certificate.create").order_by("name")
    if not projects.exists():
        raise PermissionDenied(
            "Uploading certificates needs the Requester, KeyCustodian or ProjectAdmin role."
        )
    return projects


def _preview(user, form: UploadForm) -> dict:
    """Plan every file, stage the readable ones, and say what confirming would do."""
    project = form.cleaned_data["project"]
    password = form.password_bytes()
    options = form.options()
    uploaded = form.uploaded()
    plans = [
        _plan_safely(user, project, name, data, password, options["name"])
        for name, data in uploaded
    ]
    files = [
        staging.StagedFile(name, None if plan.error else data, plan.error)
        for (name, data), plan in zip(uploaded, plans, strict=True)
    ]
    token = None
    if any(plan.error is None for plan in plans):
        token = staging.stage(user, project, files, password, options)
    return {
        "plans": plans,
        "token": token,
        "project": project,
        "now": timezone.now(),
        "counts": _plan_counts(plans),
    }


def _plan_counts(plans: list[FilePlan]) -> dict[str, int]:
    """How many certificates are new, new versions or duplicates, and how many files rejected."""
    counts = {"new": 0, "new_version": 0, "duplicate": 0, "rejected": 0}
    for plan in plans:
        if plan.error:
            counts["rejected"] += 1
        for planned in plan.certificates:
            counts[planned.outcome] += 1
    return counts


def _plan_safely(user, project, name: str, data: bytes, password, target) -> FilePlan:
    try:
        return plan_file(user, project, name, data, password, name=target or None)
    except Exception:  # a file nobody foresaw must not take the whole upload down
        logger.exception("Planning the upload of %r failed", name)
        return FilePlan(file=name, error=INTERNAL_ERROR)


def _import_staged(
    user, staged: staging.Staged, file: staging.StagedFile, *, store_keys: bool
) -> FileResult:
    if file.data is None:
        return FileResult(file.name, "rejected", file.error, [], 0)
    options = staged.options
    plan = _plan_safely(
        user, staged.project, file.name, file.data, staged.password, options["name"]
    )
    try:
        return apply_plan(
            user,
            staged.project,
            plan,
            name=options["name"] or None,
            owner=options["owner"],
            labels=options["labels"],
            store_unmatched_keys=store_keys,
        )
    except PermissionDenied as exc:
        return FileResult(file.name, "rejected", str(exc), [], plan.key_count)
    except Exception:  # each file is its own transaction: the others are kept
        logger.exception("Importing the upload of %r failed", file.name)
        return FileResult(file.name, "rejected", INTERNAL_ERROR, [], plan.key_count)


def _result_rows(project, results: list[FileResult]) -> list[dict]:
    """Each file's result with the inventory certificate of every summary, for links."""
    wanted = {s["sha256"] for r in results for s in r.certificates}
    versions = CertificateVersion.objects.filter(project=project, sha256__in=wanted)
    by_sha = {v.sha256: v.certificate for v in versions.select_related("certificate")}
    return [
        {
            "result": result,
            "certificates": [(s, by_sha.get(s["sha256"])) for s in result.certificates],
        }
        for result in results
    ]


urlpatterns = [
    path("upload/", upload, name="upload"),
    path("upload/confirm/", upload_confirm, name="upload-confirm"),
]
