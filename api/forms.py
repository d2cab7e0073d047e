"""Forms of the API tokens page."""

from django import forms

from api.fetch import FORMATS
from api.models import RATE_LIMIT_CHOICES
from certconsole.access.models import Project
from certconsole.access.roles import Role


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What it is for, e.g. “deploy pipeline”.")
    project = forms.ModelChoiceField(queryset=Project.objects.none(), to_field_name="slug")
    role = forms.ChoiceField(
        choices=Role.choices,
        initial=Role.VIEWER,
        help_text="At most a role you hold in the project; the token can never do more.",
    )
    certificates = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Optional: certificate names, one per line, to limit the token to them.",
    )
    expires_days = forms.IntegerField(
        label="Expires after (days)", min_value=1, max_value=730, initial=90
    )
    read_only = forms.BooleanField(
        required=False, initial=True, help_text="Read-only tokens read and download, nothing else."
    )
    metrics = forms.BooleanField(
        label="May read /metrics", required=False, help_text="For a Prometheus scraper."
    )
    rate_limit = forms.ChoiceField(choices=RATE_LIMIT_CHOICES, initial="600/min")

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = Project.objects.member_of(user).order_by("name")

    def clean_certificates(self) -> list[str]:
        text = self.cleaned_data["certificates"]
        return [line.strip() for line in text.splitlines() if line.strip()]


class FetchTokenForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="The server that fetches, e.g. “web-01”.")
    project = forms.ModelChoiceField(queryset=Project.objects.none(), to_field_name="slug")
    certificate = forms.CharField(max_length=200, help_text="The certificate's name.")
    format = forms.ChoiceField(
        choices=[(f, f) for f in FORMATS],
        help_text="pem: full chain then key in one file; others: a server bundle (zip).",
    )
    expires_days = forms.IntegerField(
        label="Expires after (days)", min_value=1, max_value=730, required=False
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = Project.objects.member_of(user).order_by("name")


class RevokeForm(forms.Form):
    reason = forms.CharField(max_length=500, required=False)
