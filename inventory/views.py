"""Browsing the inventory: the certificate list, its CSV export, one certificate, relabelling."""

import unicodedata
from itertools import groupby

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_http_methods

from certconsole import exports
from certconsole.access.current import user_projects
from certconsole.access.permissions import get_object_for_user
from certconsole.audit.models import AuditEvent
from certconsole.htmx import template_for
from inventory.filters import DEFAULT_SORT, SORTS, CertificateFilter
from inventory.forms_browse import CertificateLabelsForm
from inventory.models import Certificate, CertificateVersion

PAGE_SIZE = 50
SEARCH_IDS = 2000
SANS_SHOWN = 20
LIST_COLUMNS = (
    "id",
    "project_id",
    "name",
    "source",
    "primary_domain",
    "san_count",
    "issuer_name",
    "key_type",
    "not_after",
    "has_private_key",
    "revoked",
    "current_version_id",
    "label_env",
    "label_app",
    "label_owner",
    "labels",
)
CSV_COLUMNS = (
    "project",
    "name",
    "primary_domain",
    "san_count",
    "issuer",
    "key_type",
    "not_after",
    "days_left",
    "status",
    "env",
    "app",
    "owner",
    "labels",
    "has_private_key",
    "source",
    "url",
)


def _reveal(text: str) -> str:
    """Show invisible and bidirectional control characters (U+202E…) as visible codes.

    They can make a name read as something else ("gpj.exe" shown as "exe.jpg").
    """
    if not text or text.isprintable():
        return text
    return "".join(
        f"⟨U+{ord(ch):04X}⟩" if unicodedata.category(ch) in ("Cc", "Cf") else ch for ch in text
    )


def _reveal_fields(obj, *fields: str) -> None:
    """Display only: the object is never saved after this."""
    for field in fields:
        setattr(obj, field, _reveal(getattr(obj, field)))


def _filtered(request: HttpRequest) -> CertificateFilter:
    certificates = Certificate.objects.visible_to(request.user, "certificate.view")
    return CertificateFilter(
        request.GET or None, queryset=certificates.only(*LIST_COLUMNS), user=request.user
    )


def _sort_links(request: HttpRequest, current: str) -> dict:
    """For each sortable column: the URL that sorts by it (toggling direction) and its state."""
    links = {}
    for key in SORTS:
        query = request.GET.copy()
        query.pop("page", None)
        query["sort"] = f"-{key}" if current == key else key
        state = "ascending" if current == key else "descending" if current == f"-{key}" else ""
        links[key] = {"url": "?" + query.urlencode(), "state": state}
    return links


def _matching_ids(filterset: CertificateFilter, certificates) -> tuple[list | QuerySet, bool]:
    """The ids in order, and whether a search was cut short at SEARCH_IDS matches.

    A search scans text columns, so it runs once (no separate count): its first SEARCH_IDS
    matches in the chosen order are listed, and the page says to narrow it down beyond that.
    """
    ids = certificates.values_list("pk", flat=True)
    if not (filterset.is_bound and filterset.is_valid() and filterset.form.cleaned_data["q"]):
        return ids, False
    found = list(ids[: SEARCH_IDS + 1])
    return found[:SEARCH_IDS], len(found) > SEARCH_IDS


def _list_context(request: HttpRequest, filterset: CertificateFilter) -> dict:
    invalid = filterset.is_bound and not filterset.is_valid()
    certificates = Certificate.objects.none() if invalid else filterset.qs
    # Page through ids only, then read the rows of one page: a deep page or a sort without
    # an index then sorts narrow (key, id) tuples, not whole rows.
    matching, capped = _matching_ids(filterset, certificates)
    page = Paginator(matching, PAGE_SIZE).get_page(request.GET.get("page"))
    ids = list(page.object_list)
    rows = Certificate.objects.only(*LIST_COLUMNS).in_bulk(ids)
    projects = {p.pk: p for p in user_projects(request.user)}
    deployed = _deployed_counts(ids)
    page.object_list = [rows[pk] for pk in ids if pk in rows]
    for cert in page.object_list:
        cert.project_ref = projects.get(cert.project_id)
        cert.deployed_count = deployed.get(cert.pk, 0)
        _reveal_fields(cert, "name", "primary_domain", "issuer_name")
    query = request.GET.copy()
    query.pop("page", None)
    return {
        "filter": filterset,
        "page": page,
        "capped": capped,
        "query": query.urlencode(),
        "sort_links": _sort_links(request, request.GET.get("sort", DEFAULT_SORT)),
    }


def _deployed_counts(ids: list[int]) -> dict[int, int]:
    """Bindings per certificate of one page, in one query (the deployments app's reverse
    relation: inventory reads it through the ORM and imports nothing of deployments)."""
    binding = Certificate._meta.get_field("bindings").related_model
    counted = (
        binding.objects.filter(certificate_id__in=ids)
        .values("certificate_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {row["certificate_id"]: row["n"] for row in counted}


@require_GET
@login_required
def certificate_list(request: HttpRequest) -> HttpResponse:
    context = _list_context(request, _filtered(request))
    return render(
        request, template_for(request, "inventory/certificate_list.html", "results"), context
    )


def _csv_rows(request, certificates):
    projects = {p.pk: p.slug for p in user_projects(request.user)}
    now = timezone.now()
    for cert in certificates:
        row = (
            projects.get(cert.project_id, ""),
            cert.name,
            cert.primary_domain,
            cert.san_count,
            cert.issuer_name,
            cert.key_type,
            cert.not_after.isoformat() if cert.not_after else "",
            cert.days_left(now),
            cert.status(now),
            cert.label_env,
            cert.label_app,
            cert.label_owner,
            ";".join(f"{k}={v}" for k, v in sorted((cert.labels or {}).items())),
            "yes" if cert.has_private_key else "no",
            cert.source,
            request.build_absolute_uri(cert.get_absolute_url()),
        )
        yield row


@require_GET
@login_required
def certificate_export_csv(request: HttpRequest) -> HttpResponse:
    filterset = _filtered(request)
    if filterset.is_bound and not filterset.is_valid():
        context = _list_context(request, filterset)
        return render(request, "inventory/certificate_list.html", context, status=400)
    certificates = filterset.qs.iterator(chunk_size=2000)
    lines = exports.csv_lines(CSV_COLUMNS, _csv_rows(request, certificates))
    response = StreamingHttpResponse(lines, content_type="text/csv")
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = content_disposition_header(True, f"certificates-{stamp}.csv")
    return response


def _selected_version(request: HttpRequest, cert: Certificate) -> CertificateVersion | None:
    versions = cert.versions.select_related("private_key")
    wanted = request.GET.get("version", "").strip().lower()
    if wanted:
        version = versions.filter(sha256=wanted).first()
        if version is None:
            raise Http404("This certificate has no version with that SHA-256.")
        return version
    if cert.current_version_id:
        return versions.filter(pk=cert.current_version_id).first()
    return versions.first()


def _sans(version: CertificateVersion) -> tuple[list, list]:
    """SANs grouped by kind: the first few (shown), then the rest (behind "show all")."""
    ordered = sorted(version.sans, key=lambda s: s["kind"])
    head, rest = ordered[:SANS_SHOWN], ordered[SANS_SHOWN:]

    def by_kind(items):
        return [
            (kind, [_reveal(san["value"]) for san in sans])
            for kind, sans in groupby(items, key=lambda san: san["kind"])
        ]

    return by_kind(head), by_kind(rest)


def _detail_context(
    request: HttpRequest, cert: Certificate, version: CertificateVersion | None
) -> dict:
    user = request.user
    now = timezone.now()
    _reveal_fields(cert, "name")
    context = {
        "cert": cert,
        "certificate": cert,
        "version": version,
        "versions": cert.versions.defer("der", "sans", "lint_findings"),
        "can_change": user.has_perm("certificate.change", cert),
        "can_view_audit": user.has_perm("audit.view", cert),
        "now": now,
    }
    if version is not None:
        context["version_days_left"] = (version.not_after - now).days
        context["links"] = list(version.links.select_related("issuer"))
        for link in context["links"]:
            link.days_left = (link.issuer.not_after - now).days
            _reveal_fields(link.issuer, "subject", "issuer")
        _reveal_fields(version, "subject", "issuer", "missing_issuer")
        context["sans_head"], context["sans_rest"] = _sans(version)
    if context["can_view_audit"]:
        context["events"] = list(
            AuditEvent.objects.filter(
                target_type="inventory.certificate", target_id=str(cert.pk)
            ).order_by("-id")[:25]
        )
        for event in context["events"]:
            _reveal_fields(event, "target_label", "actor_name")
    return context


@require_GET
@login_required
def certificate_detail(request: HttpRequest, pk: int) -> HttpResponse:
    cert = get_object_for_user(request, Certificate, "certificate.view", pk=pk)
    version = _selected_version(request, cert)
    context = _detail_context(request, cert, version)
    return render(request, "inventory/certificate_detail.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def certificate_edit(request: HttpRequest, pk: int) -> HttpResponse:
    cert = get_object_for_user(request, Certificate, "certificate.change", pk=pk)
    form = CertificateLabelsForm(request.POST or None, instance=cert)
    if request.method == "POST":
        if form.is_valid():
            changed = form.save(request.user)
            messages.success(request, "Saved." if changed else "Nothing changed.")
            return redirect(cert)
        context = {"cert": cert, "form": form}
        return render(request, "inventory/certificate_edit.html", context, status=400)
    return render(request, "inventory/certificate_edit.html", {"cert": cert, "form": form})


urlpatterns: list = [
    path("", certificate_list, name="certificate-list"),
    path("export.csv", certificate_export_csv, name="certificate-export-csv"),
    path("<int:pk>/", certificate_detail, name="certificate-detail"),
    path("<int:pk>/edit/", certificate_edit, name="certificate-edit"),
]
