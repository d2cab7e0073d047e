import django_filters
from django import forms
from django.db.models import Q

from certconsole.access.models import Project
from certconsole.audit.models import AuditEvent


class AuditEventFilter(django_filters.FilterSet):
    actor = django_filters.CharFilter(field_name="actor_name", lookup_expr="iexact", label="Actor")
    action = django_filters.CharFilter(method="filter_action", label="Action")
    project = django_filters.ModelChoiceFilter(
        queryset=Project.objects.none(), to_field_name="slug", label="Project"
    )
    target = django_filters.CharFilter(method="filter_target", label="Target")
    source = django_filters.ChoiceFilter(choices=AuditEvent.Source.choices, label="Source")
    since = django_filters.DateFilter(
        field_name="created_at",
        lookup_expr="date__gte",
        label="From",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    until = django_filters.DateFilter(
        field_name="created_at",
        lookup_expr="date__lte",
        label="Until",
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    class Meta:
        model = AuditEvent
        fields: list[str] = []

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.filters["project"].queryset = Project.objects.visible_to(user, "audit.view")

    def filter_action(self, queryset, name, value):
        """ "certificate" matches every certificate.* action; a full name matches exactly."""
        value = value.strip()
        return queryset.filter(Q(action=value) | Q(action__startswith=value.rstrip(".") + "."))

    def filter_target(self, queryset, name, value):
        value = value.strip()
        if ":" in value:
            target_type, _, target_id = value.partition(":")
            return queryset.filter(target_type=target_type, target_id=target_id)
        return queryset.filter(Q(target_label__icontains=value) | Q(target_id=value))
