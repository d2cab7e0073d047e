"""Renaming and relabelling a certificate."""

import re

from django import forms
from django.db import transaction

from certconsole.audit import record
from inventory.models import Certificate

MAX_LABELS = 50
_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,62}$")
NAMED_LABELS = ("env", "app", "owner")
NAMED_FIELDS = ("label_env", "label_app", "label_owner")


def labels_text(labels: dict) -> str:
    """The free labels as the key=value lines the form shows."""
    return "\n".join(f"{key}={value}" for key, value in sorted(labels.items()))


class CertificateLabelsForm(forms.ModelForm):
    labels_text = forms.CharField(
        label="Other labels",
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "spellcheck": "false"}),
        help_text="One key=value per line, e.g. team=payments. Keys: letters, digits, . _ - /",
    )

    class Meta:
        model = Certificate
        fields = ["name", "label_env", "label_app", "label_owner"]
        labels = {
            "label_env": "Environment",
            "label_app": "Application",
            "label_owner": "Owner",
        }
        help_texts = {
            "name": "Unique in the project; how people find this certificate.",
            "label_env": "e.g. prod, staging",
            "label_owner": "A person or team to contact about renewals.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial.setdefault("labels_text", labels_text(self.instance.labels or {}))
        self.before = self.snapshot(self.instance)

    @staticmethod
    def snapshot(cert: Certificate) -> dict:
        return {
            "name": cert.name,
            "env": cert.label_env,
            "app": cert.label_app,
            "owner": cert.label_owner,
            "labels": dict(cert.labels or {}),
        }

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the certificate a name.")
        taken = Certificate.objects.filter(project_id=self.instance.project_id, name=name)
        if taken.exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError("Another certificate in this project has this name.")
        return name

    def clean_labels_text(self) -> dict:
        labels: dict[str, str] = {}
        errors = []
        for number, line in enumerate(self.cleaned_data["labels_text"].splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = (part.strip() for part in line.partition("="))
            if not sep or not _LABEL_KEY.match(key):
                errors.append(f"Line {number}: write key=value (key: letters, digits, . _ - /).")
            elif key in NAMED_LABELS:
                errors.append(f"Line {number}: use the {key} field above for “{key}”.")
            elif key in labels:
                errors.append(f"Line {number}: the key “{key}” appears twice.")
            elif len(value) > 200:
                errors.append(f"Line {number}: keep values under 200 characters.")
            else:
                labels[key] = value
        if len(labels) > MAX_LABELS:
            errors.append(f"At most {MAX_LABELS} labels.")
        if errors:
            raise forms.ValidationError(errors)
        return labels

    def save(self, actor) -> bool:
        """Save and audit the change; False when nothing changed."""
        cert = self.instance
        for field in NAMED_FIELDS:
            setattr(cert, field, self.cleaned_data[field].strip())
        cert.labels = self.cleaned_data["labels_text"]
        after = self.snapshot(cert)
        if after == self.before:
            return False
        with transaction.atomic():
            cert.save(update_fields=["name", *NAMED_FIELDS, "labels", "updated_at"])
            record(actor, "certificate.change", cert, before=self.before, after=after)
        return True
