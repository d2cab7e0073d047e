"""The notification policy form: thresholds, recipients, channels and quiet days."""

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from certconsole.access.roles import Role
from inventory.models import NotificationPolicy

MAX_THRESHOLD = 365


class NotificationPolicyForm(forms.Form):
    enabled = forms.BooleanField(label="Send reminders for this project", required=False)
    thresholds = forms.CharField(
        label="Thresholds (days before expiry)",
        max_length=200,
        help_text="Comma-separated, e.g. 45, 30, 14, 7, 3, 1, 0 — 0 means “has expired”. "
        "Each certificate version gets one reminder per threshold.",
    )
    notify_owner = forms.BooleanField(
        label="The certificate's owner",
        required=False,
        help_text="When the owner label is an email address.",
    )
    recipient_roles = forms.MultipleChoiceField(
        label="Project members with these roles",
        choices=Role.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Members can opt out in their preferences, except for certificates they own.",
    )
    extra_recipients = forms.CharField(
        label="Other addresses",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One email address per line (a team list, an on-call alias).",
    )
    email_enabled = forms.BooleanField(label="Send email digests", required=False)
    webhook_url = forms.URLField(
        label="Webhook URL",
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text="A Slack-compatible incoming webhook or any HTTPS endpoint taking JSON.",
    )
    webhook_secret = forms.CharField(
        label="Webhook signing secret",
        required=False,
        strip=False,
        max_length=200,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
        help_text="Signs each call (HMAC-SHA256 header X-CertConsole-Signature). "
        "Leave empty to keep the current one; it is stored encrypted and never shown.",
    )
    clear_webhook_secret = forms.BooleanField(label="Remove the signing secret", required=False)
    quiet_days = forms.TypedMultipleChoiceField(
        label="Quiet days",
        choices=NotificationPolicy.WEEKDAYS,
        coerce=int,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Nothing is sent on these days; the digest goes out on the next other day.",
    )

    @classmethod
    def for_policy(cls, policy: NotificationPolicy, data=None) -> "NotificationPolicyForm":
        initial = {
            "enabled": policy.enabled,
            "thresholds": ", ".join(str(t) for t in sorted(policy.thresholds, reverse=True)),
            "notify_owner": policy.notify_owner,
            "recipient_roles": policy.recipient_roles,
            "extra_recipients": "\n".join(policy.extra_recipients),
            "email_enabled": policy.email_enabled,
            "webhook_url": policy.webhook_url,
            "quiet_days": policy.quiet_days,
        }
        return cls(data, initial=initial)

    def clean_thresholds(self) -> list[int]:
        values = []
        for part in self.cleaned_data["thresholds"].replace(";", ",").split(","):
            if not part.strip():
                continue
            try:
                value = int(part)
            except ValueError:
                raise ValidationError(f"“{part.strip()}” is not a whole number of days.") from None
            if not 0 <= value <= MAX_THRESHOLD:
                raise ValidationError(f"Thresholds are between 0 and {MAX_THRESHOLD} days.")
            values.append(value)
        if not values:
            raise ValidationError("Give at least one threshold.")
        return sorted(set(values), reverse=True)

    def clean_extra_recipients(self) -> list[str]:
        addresses = []
        for line in self.cleaned_data["extra_recipients"].replace(",", "\n").splitlines():
            address = line.strip()
            if not address:
                continue
            try:
                validate_email(address)
            except ValidationError:
                raise ValidationError(f"“{address}” is not an email address.") from None
            addresses.append(address.lower())
        return list(dict.fromkeys(addresses))

    def changes(self) -> dict:
        """Keyword arguments for NotificationPolicy.change()."""
        data = dict(self.cleaned_data)
        secret = data.pop("webhook_secret")
        clear = data.pop("clear_webhook_secret")
        data["webhook_secret"] = "" if clear else (secret or None)
        return data
