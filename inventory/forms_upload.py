"""The upload form: files or pasted text, a password, the target project, name, owner, labels."""

import re

from django import forms

from certconsole.access.models import Project
from inventory.importing import max_file_bytes

MAX_FILES = 20
PASTED_NAME = "pasted text"
_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-/]{0,62}$")


def parse_label(item: str) -> tuple[str, str]:
    """ "env=prod" → ("env", "prod"); ValueError with a readable message otherwise."""
    key, sep, value = item.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not _LABEL_KEY.match(key):
        raise ValueError(
            f"“{item.strip()}” is not a label: write KEY=VALUE, the key made of letters, "
            "digits, “_”, “-”, “.” or “/”."
        )
    return key, value


def parse_labels(items: list[str]) -> dict[str, str]:
    """Labels from KEY=VALUE items (a later key wins)."""
    return dict(parse_label(item) for item in items if item.strip())


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files from one input; always a list (empty when none was chosen)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        kwargs.setdefault("allow_empty_file", True)  # the import says "The file is empty." per file
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        if isinstance(data, list | tuple):
            return [super(MultipleFileField, self).clean(item, initial) for item in data]
        return [super().clean(data, initial)] if data else []


class UploadForm(forms.Form):
    files = MultipleFileField(required=False, label="Files")
    text = forms.CharField(
        required=False,
        strip=False,
        label="Or paste PEM text",
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
    )
    password = forms.CharField(
        required=False,
        strip=False,
        label="Password",
        help_text="For PKCS#12 files and encrypted private keys; not stored after the import.",
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
    )
    project = forms.ModelChoiceField(queryset=Project.objects.none(), empty_label=None)
    name = forms.CharField(
        required=False,
        max_length=190,
        help_text="Optional. The name of an existing certificate makes the upload its next "
        "version; empty: named after the first DNS name.",
    )
    owner = forms.CharField(
        required=False, max_length=254, help_text="Optional. A person or team, e.g. an e-mail."
    )
    labels = forms.CharField(
        required=False,
        help_text="Optional KEY=VALUE pairs separated by commas, e.g. env=prod, app=shop.",
    )

    def __init__(self, *args, projects, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = projects
        self.fields["files"].help_text = (
            f"Up to {MAX_FILES} files: PEM, DER, PKCS#7 (.p7b) or PKCS#12 (.pfx, .p12), "
            f"each at most {max_file_bytes() / 1024 / 1024:g} MB."
        )

    def clean_labels(self) -> dict[str, str]:
        try:
            return parse_labels(self.cleaned_data["labels"].split(","))
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self):
        cleaned = super().clean()
        count = len(cleaned.get("files") or []) + bool((cleaned.get("text") or "").strip())
        if count == 0 and not self.has_error("files"):
            raise forms.ValidationError("Choose at least one file or paste a certificate.")
        if count > MAX_FILES:
            raise forms.ValidationError(
                f"{count} files is more than the {MAX_FILES} one upload takes; "
                "upload them in several goes or use the import_certs command."
            )
        return cleaned

    def uploaded(self) -> list[tuple[str, bytes]]:
        """(file name, bytes) of every file and the pasted text, in the order given.

        Reads at most one byte past the size limit: the import refuses the file
        with its own message, without holding a huge upload in memory.
        """
        limit = max_file_bytes() + 1
        found = [(f.name, f.read(limit)) for f in self.cleaned_data["files"]]
        text = self.cleaned_data["text"]
        if text.strip():
            found.append((PASTED_NAME, text.encode("utf-8")[:limit]))
        return found

    def password_bytes(self) -> bytes | None:
        password = self.cleaned_data["password"]
        return password.encode("utf-8") if password else None

    def options(self) -> dict:
        """The per-certificate options apply_plan takes."""
        data = self.cleaned_data
        return {
            "name": data["name"].strip(),
            "owner": data["owner"].strip(),
            "labels": data["labels"],
        }
