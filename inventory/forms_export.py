"""The private key export form: format, passphrase, reason, and the password when it is stale."""

from django import forms
from django.conf import settings

from inventory.exporting import DEFAULT_KEY_FORMAT, KEY_FORMATS, ExportError, check_passphrase

MIN_PASSPHRASE = 8
REASON_REQUIRED = "Give a reason: key exports are recorded in the audit log."


def _format_choices() -> list:
    groups: dict[str, list[tuple[str, str]]] = {}
    for value, spec in KEY_FORMATS.items():
        groups.setdefault(spec.group, []).append((value, spec.label))
    return list(groups.items())


class KeyExportForm(forms.Form):
    format = forms.ChoiceField(
        choices=_format_choices,
        initial=DEFAULT_KEY_FORMAT,
        help_text="What the file will be; the list below says which formats need a passphrase.",
    )
    passphrase = forms.CharField(
        required=False,
        strip=False,
        min_length=MIN_PASSPHRASE,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=(
            f"Protects the file; at least {MIN_PASSPHRASE} characters. It is not stored: "
            "whoever installs the file needs it from you."
        ),
    )
    passphrase_confirm = forms.CharField(
        label="Passphrase again",
        required=False,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    reason = forms.CharField(
        max_length=500,
        error_messages={"required": REASON_REQUIRED},
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
        help_text="Why the key leaves CertConsole (e.g. a ticket); recorded in the audit log.",
    )
    password = forms.CharField(
        label="Your password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )

    otp_token = forms.CharField(
        label="Code from your authenticator app",
        max_length=32,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autocapitalize": "off"}
        ),
        help_text="Key export needs your second factor from the last 5 minutes; "
        "a recovery code works too.",
    )

    def __init__(self, *args, user, needs_password: bool, needs_code: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.wrong_password = False
        if not needs_code:
            del self.fields["otp_token"]
        if not needs_password:
            del self.fields["password"]
        else:
            minutes = settings.CERTCONSOLE_SENSITIVE_REAUTH_SECONDS // 60
            self.fields[
                "password"
            ].help_text = (
                f"Your last sign-in is more than {minutes} minutes old: confirm it is still you."
            )

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        if not self.user.check_password(password):
            self.wrong_password = True
            raise forms.ValidationError("That is not your password.")
        # Nothing downstream needs it; keep it out of cleaned_data.
        return ""

    def clean(self):
        data = super().clean()
        fmt = data.get("format")
        if "passphrase" in self.errors:
            return data
        passphrase = data.get("passphrase") or ""
        if passphrase != (data.get("passphrase_confirm") or ""):
            self.add_error("passphrase_confirm", "The two passphrases differ.")
        elif fmt:
            try:
                check_passphrase(fmt, passphrase)
            except ExportError as exc:
                self.add_error("passphrase", str(exc))
        return data
