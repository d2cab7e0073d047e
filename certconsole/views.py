"""The landing page: certificate risk at a glance, for the current project or all of them.

Every widget is one aggregate query in the database, so the page costs the same number of
queries with ten certificates or a hundred thousand. The dashboard composes the apps (like
urls.py does), so it is the one certconsole module that reads the inventory.
"""

from datetime import timedelta
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.db.models import (
    Count,
    DateTimeField,
    Exists,
    F,
    Func,
    IntegerField,
    OuterRef,
    Q,
    Value,
    Window,
)
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from certconsole import charts
from certconsole.access.backends import project_permissions
from certconsole.access.current import current_project, user_projects
from certconsole.access.models import Membership
from certconsole.access.preferences import apply_default_project
from certconsole.audit.models import AuditEvent
from inventory.models import EXPIRING_DAYS, Certificate, CertificateVersion

TIMELINE_WEEKS = 26
RISK_EXAMPLES = 5
MIN_RSA_BITS = 2048


@require_GET
@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    apply_default_project(request)
    projects = user_projects(request.user)
    everything = request.GET.get("scope") == "all"
    project = None if everything else current_project(request)
    # The projects whose certificates the user may see, as literal ids: the planner then
    # estimates each widget well (the same rule as visible_to(), already cached per request).
    scoped = [project] if project is not None else projects
    ids = [p.pk for p in scoped if request.user.has_perm("certificate.view", p)]
    certificates = Certificate.objects.filter(project_id__in=ids)
    versions = CertificateVersion.objects.filter(project_id__in=ids)
    now = timezone.now()
    scope = {"project": project.slug} if project is not None else {}
    counts, no_owner = _status_counts(certificates, now, scope)
    context = {
        "projects": _projects_with_roles(request.user, projects),
        "project": project,
        "everything": everything,
        "counts": counts,
        "timeline": _timeline(certificates, now),
        "risks": _risks(certificates, versions, now, no_owner, scope),
        "recent_events": AuditEvent.objects.visible_to(request.user, "audit.view").order_by("-id")[
            :10
        ],
        "can_audit": request.user.is_superuser
        or any("audit.view" in project_permissions(request.user, p.pk) for p in projects),
    }
    return render(request, "dashboard.html", context)


def _projects_with_roles(user, projects) -> list:
    roles: dict[int, list[str]] = {}
    for membership in Membership.objects.filter(user=user):
        roles.setdefault(membership.project_id, []).append(membership.get_role_display())
    return [(project, sorted(roles.get(project.pk, []))) for project in projects]


def _list_url(scope: dict, **params) -> str:
    return reverse("inventory:certificate-list") + "?" + urlencode({**params, **scope})


def _status_filters(now) -> dict[str, Q]:
    """The list's statuses (Certificate.with_status) as conditions, for one aggregate."""
    soon = now + timedelta(days=EXPIRING_DAYS)
    return {
        "valid": Q(revoked=False, not_after__gt=soon),
        "expiring": Q(revoked=False, not_after__gt=now, not_after__lte=soon),
        "expired": Q(revoked=False, not_after__lte=now),
        "revoked": Q(revoked=True),
    }


STATUS_LABELS = {
    "valid": ("Valid", "ok", f"more than {EXPIRING_DAYS} days left"),
    "expiring": ("Expiring", "warn", f"within {EXPIRING_DAYS} days"),
    "expired": ("Expired", "bad", "no longer valid"),
    "revoked": ("Revoked", "bad", "withdrawn by the issuer"),
}


def _status_counts(certificates, now, scope: dict) -> tuple[list[dict], int]:
    """One query: certificates per status (linking to the filtered list), and owner-less ones."""
    filters = _status_filters(now)
    totals = certificates.aggregate(
        **{f"n_{name}": Count("pk", filter=condition) for name, condition in filters.items()},
        n_no_owner=Count("pk", filter=_live(now) & Q(label_owner="")),
    )
    counts = [
        {
            "status": name,
            "label": STATUS_LABELS[name][0],
            "badge": STATUS_LABELS[name][1],
            "hint": STATUS_LABELS[name][2],
            "count": totals[f"n_{name}"],
            "url": _list_url(scope, status=name),
        }
        for name in filters
    ]
    return counts, totals["n_no_owner"]


def _live(now) -> Q:
    return Q(revoked=False, current_version__isnull=False, not_after__gt=now)


class WeekIndex(Func):
    """Whole weeks from `start` to a date-time column (0 = the first week), in the database.

    One cheap expression per row and a GROUP BY beat 26 conditional counts per row.
    """

    output_field = IntegerField()

    def __init__(self, column: str, start):
        super().__init__(F(column), Value(start, output_field=DateTimeField()))

    def as_sqlite(self, compiler, connection, **extra):
        template = "CAST((julianday(%(expressions)s)) / 7 AS INTEGER)"
        return self.as_sql(compiler, connection, template=template, arg_joiner=") - julianday(")

    def as_postgresql(self, compiler, connection, **extra):
        template = "FLOOR(EXTRACT(EPOCH FROM (%(expressions)s)) / 604800)::integer"
        return self.as_sql(compiler, connection, template=template, arg_joiner=" - ")


def _timeline(certificates, now) -> charts.Timeline:
    """One query: certificates expiring in each of the next 26 weeks (from today)."""
    start = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    end = start + timedelta(weeks=TIMELINE_WEEKS)
    upcoming = certificates.filter(revoked=False, not_after__gte=now, not_after__lt=end)
    per_week = dict(
        upcoming.annotate(week=WeekIndex("not_after", start))
        .order_by()
        .values("week")
        .annotate(n=Count("pk"))
        .values_list("week", "n")
    )
    counts = [per_week.get(i, 0) for i in range(TIMELINE_WEEKS)]
    return charts.expiry_timeline(counts, start.date())


def _deployed() -> Q:
    """Has a binding (deployments' reverse relation; absent when that app is not installed)."""
    if not hasattr(Certificate, "bindings"):
        return Q(pk__in=[])
    binding = Certificate._meta.get_field("bindings").related_model
    return Q(Exists(binding.objects.filter(certificate=OuterRef("pk"))))


RISKS = {
    "expiring_no_renewal": (
        "Expiring soon without auto-renewal",
        f"Expire within {EXPIRING_DAYS} days and nothing renews them.",
        {"status": "expiring"},
    ),
    "expired_deployed": (
        "Expired but still deployed",
        "Targets still serve these: clients see errors now.",
        {"status": "expired"},
    ),
    "weak_key": (
        "Weak keys",
        f"RSA under {MIN_RSA_BITS} bits or another key the linter calls weak.",
        None,
    ),
    "incomplete_chain": (
        "Incomplete chains",
        "An intermediate is missing: some clients will not trust them.",
        None,
    ),
    "no_owner": (
        "No owner",
        "Nobody hears about their expiry by name: set the owner label.",
        {"label": "owner="},
    ),
}


def _weak_key() -> Q:
    """On a version: the linter's weak_key finding, or RSA under 2048 bits."""
    if connection.vendor == "postgresql":  # jsonb containment, no text cast of every row
        finding = Q(lint_findings__contains=[{"code": "weak_key"}])
    else:
        finding = Q(lint_findings__icontains='"weak_key"')
    return finding | Q(key_type__startswith="RSA", key_size__lt=MIN_RSA_BITS)


def _incomplete_chain() -> Q:
    return Q(chain_complete=False)


def _risks(certificates, versions, now, no_owner: int, scope: dict) -> list[dict]:
    """Each risk's count and its soonest-expiring certificates, in a fixed number of queries.

    The small sets (expiring; expired and deployed) come with their count from one windowed
    query each. Owner-less ones were counted beside the statuses. Key and chain facts live on
    the version: one scan of versions counts both, checking "is current" through the index on
    Certificate.current_version instead of joining every certificate to its version.
    """
    live = _live(now)
    current_live = Exists(
        Certificate.objects.filter(current_version=OuterRef("pk"), revoked=False, not_after__gt=now)
    )
    on_versions = {"weak_key": _weak_key, "incomplete_chain": _incomplete_chain}
    # The flags first, so "is it current?" is only asked of flagged versions.
    flagged = versions.filter(_weak_key() | _incomplete_chain()).filter(current_live)
    totals = flagged.aggregate(
        **{name: Count("pk", filter=condition()) for name, condition in on_versions.items()}
    )
    first: dict[str, list[int]] = {}
    expiring = certificates.filter(live, not_after__lte=now + timedelta(days=EXPIRING_DAYS))
    if hasattr(Certificate, "renewal_policy"):  # orders' reverse relation
        expiring = expiring.exclude(renewal_policy__auto_renew=True)
    totals["expiring_no_renewal"], first["expiring_no_renewal"] = _windowed(expiring)
    deployed = certificates.filter(_deployed(), revoked=False, not_after__lte=now)
    totals["expired_deployed"], first["expired_deployed"] = _windowed(deployed)
    totals["no_owner"] = no_owner
    if no_owner:
        first["no_owner"] = _soonest(certificates.filter(live, label_owner=""), "pk")
    for name, condition in on_versions.items():
        if totals[name]:
            flagged = versions.filter(condition()).values("pk")
            first[name] = _soonest(certificates.filter(live, current_version__in=flagged), "pk")
    return _risk_rows(totals, first, scope)


def _windowed(queryset) -> tuple[int, list[int]]:
    """One query: how many rows match, and the ids of the soonest-expiring few."""
    rows = list(
        queryset.annotate(total=Window(Count("pk")))
        .order_by("not_after", "pk")
        .values_list("pk", "total")[:RISK_EXAMPLES]
    )
    return (rows[0][1] if rows else 0), [pk for pk, _ in rows]


def _soonest(queryset, id_field: str) -> list[int]:
    return list(
        queryset.order_by("not_after", "pk").values_list(id_field, flat=True)[:RISK_EXAMPLES]
    )


def _risk_rows(totals: dict, first: dict[str, list[int]], scope: dict) -> list[dict]:
    """The risk cards; one query for the names of every example certificate."""
    wanted = {pk for ids in first.values() for pk in ids}
    named = Certificate.objects.filter(pk__in=wanted).only("id", "name", "not_after")
    by_id = {cert.pk: cert for cert in named} if wanted else {}
    return [
        {
            "name": name,
            "label": label,
            "hint": hint,
            "count": totals[name],
            "examples": [by_id[pk] for pk in first.get(name, []) if pk in by_id],
            "url": _list_url(scope, **params) if params is not None else None,
        }
        for name, (label, hint, params) in RISKS.items()
    ]
