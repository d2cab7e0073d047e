"""Filters, search and sorting for the certificate list (and its CSV export)."""

import re

import django_filters
from django import forms
from django.db.models import CharField, Q
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from certconsole.access.models import Project
from inventory.models import (
    Certificate,
    CertificateName,
    CertificateVersion,
    ExpiryStatus,
    Source,
)

# ?sort= value → ORM ordering; a leading "-" sorts descending. pk keeps pages stable.
SORTS = {
    "name": "name",
    "expiry": "not_after",
    "domain": "primary_domain",
    "issuer": "issuer_name",
    "key": "key_type",
}
DEFAULT_SORT = "expiry"
KEY_TYPES = ["RSA-2048", "RSA-3072", "RSA-4096", "EC-P256", "EC-P384", "EC-P521", "Ed25519"]
NAMED_LABELS = ("env", "app", "owner")
_HEX = re.compile(r"^[0-9a-f]{4,}$")
_FINGERPRINT_NOISE = re.compile(r"[\s:]")


def ordering(sort: str) -> list[str]:
    """The order_by() arguments for a whitelisted ?sort= value (default: soonest expiry)."""
    desc = sort.startswith("-")
    field = SORTS.get(sort.lstrip("-"), SORTS[DEFAULT_SORT])
    return [f"-{field}" if desc else field, "-pk" if desc else "pk"]


def search_filter(query: str) -> Q:
    """Domains (exact, covering wildcard, part of a name), names, subject, serial, fingerprints.

    One `id IN (… UNION …)`: each branch can use its own index (with PostgreSQL trigram
    indexes, the contains-matches too), where an OR across tables forces a full scan.
    Domains go through CertificateName (short lower-case rows, so a case-sensitive match).
    """
    text = query.strip()
    name = text.lower().rstrip(".")
    candidates = [name]
    if "." in name:
        candidates.append("*." + name.split(".", 1)[1])
    branches = [
        CertificateName.objects.filter(Q(name__in=candidates) | Q(name__contains=name))
        .values("certificate_id")
        .order_by(),
        Certificate.objects.filter(Q(name__icontains=text) | Q(subject__icontains=text))
        .values("id")
        .order_by(),
    ]
    digits = _FINGERPRINT_NOISE.sub("", name)
    if _HEX.match(digits):
        prefix = Q(sha256__startswith=digits) | Q(sha1__startswith=digits)
        branches.append(
            CertificateVersion.objects.filter(prefix | Q(serial__startswith=digits))
            .values("certificate_id")
            .order_by()
        )
    return Q(id__in=branches[0].union(*branches[1:]))


class CertificateFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        method="filter_q",
        label="Search",
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Domain, subject, serial or fingerprint"}
        ),
        max_length=300,
    )
    project = django_filters.ModelChoiceFilter(
        queryset=Project.objects.none(),
        to_field_name="slug",
        label="Project",
        empty_label="All my projects",
    )
    status = django_filters.ChoiceFilter(
        choices=ExpiryStatus.choices, method="filter_status", empty_label="Any", label="Status"
    )
    expiring = django_filters.NumberFilter(
        method="filter_expiring",
        label="Expiring within (days)",
        min_value=0,
        max_value=3650,
        widget=forms.NumberInput(attrs={"min": 0, "max": 3650, "size": 5}),
    )
    issuer = django_filters.CharFilter(
        field_name="issuer_name", lookup_expr="istartswith", label="Issuer", max_length=255
    )
    key_type = django_filters.ChoiceFilter(
        choices=[(k, k) for k in KEY_TYPES], empty_label="Any", label="Key type"
    )
    label = django_filters.CharFilter(
        method="filter_label",
        label="Label",
        max_length=300,
        widget=forms.TextInput(attrs={"placeholder": "env=prod, or a value"}),
    )
    has_key = django_filters.ChoiceFilter(
        choices=[("yes", "Stored"), ("no", "Not stored")],
        method="filter_has_key",
        empty_label="Any",
        label="Private key",
    )
    source = django_filters.ChoiceFilter(choices=Source.choices, empty_label="Any", label="Source")
    # Not a filter: kept in the form so live filtering keeps the order (see qs).
    sort = django_filters.CharFilter(method="filter_sort", widget=forms.HiddenInput, max_length=20)

    class Meta:
        model = Certificate
        fields: list[str] = []

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.filters["project"].queryset = Project.objects.visible_to(
            user, "certificate.view"
        ).order_by("name")

    @property
    def qs(self):
        queryset = super().qs
        return queryset.order_by(*ordering(self.data.get("sort", "") if self.is_bound else ""))

    def filter_q(self, queryset, name, value):
        return queryset.filter(search_filter(value)) if value.strip() else queryset

    def filter_status(self, queryset, name, value):
        return queryset.with_status(value)

    def filter_expiring(self, queryset, name, value):
        return queryset.expiring_within(int(value))

    def filter_has_key(self, queryset, name, value):
        return queryset.filter(has_private_key=value == "yes")

    def filter_label(self, queryset, name, value):
        """env=prod (or app/owner, or any free key=value), or a bare env/app/owner value."""
        key, sep, wanted = (part.strip() for part in value.partition("="))
        if not sep:
            return queryset.filter(Q(label_env=key) | Q(label_app=key) | Q(label_owner=key))
        if key in NAMED_LABELS:
            return queryset.filter(**{f"label_{key}": wanted})
        # Cast: without it SQLite compares the text to a JSON literal and fails.
        label = Cast(KeyTextTransform(key, "labels"), CharField())
        return queryset.alias(_label=label).filter(_label=wanted)

    def filter_sort(self, queryset, name, value):
        return queryset  # applied last in qs, so it is the whole ordering

    @property
    def active(self) -> bool:
        """True when any filter other than sorting narrows the list."""
        if not self.is_bound:
            return False
        return any(v for k, v in self.data.items() if k in self.filters and k != "sort")
