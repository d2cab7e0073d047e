"""Forms of the orders app: they validate and normalise, never touch the network."""

import json

from django import forms

from inventory.forms_upload import parse_label
from inventory.models import Certificate
from orders.domains import normalize_domains, requires_dns01
from orders.issuance import REVOCATION_REASONS, OrderError, csr_names
from orders.models import (
    KEY_TYPES,
    AcmeAccount,
    DnsProvider,
    IssuanceProfile,
    Order,
    OrderPolicy,
    RenewalPolicy,
)

HTTP01 = "http-01"
DNS01_MANUAL = "dns-01"


def method_choices(project) -> list[tuple[str, str]]:
    choices = [
        (HTTP01, "HTTP-01 — the console answers at /.well-known/acme-challenge/"),
        (DNS01_MANUAL, "DNS-01 — I add the TXT record myself"),
    ]
    providers = DnsProvider.objects.filter(project=project).exclude(kind=DnsProvider.Kind.MANUAL)
    choices += [
        (f"dns-01:{p.pk}", f"DNS-01 via {p.name} ({p.get_kind_display()})") for p in providers
    ]
    return choices


EXTERNAL = "external"
VALIDATION_LEVELS = [
    ("DV", "DV — domain validated"),
    ("OV", "OV — organisation validated"),
    ("EV", "EV — extended validation"),
]
COVERAGES = [("single", "Single name"), ("san", "Several names (SAN)"), ("wildcard", "Wildcard")]


def issuer_choices(project) -> list[tuple[str, str]]:
    """ACME accounts (value: the pk), private CA profiles ("profile:pk"), an external CA."""
    choices = [(str(a.pk), f"{a.name} (ACME)") for a in AcmeAccount.objects.filter(project=project)]
    profiles = IssuanceProfile.objects.filter(
        ca__project=project, ca__status="active"
    ).select_related("ca")
    choices += [
        (f"profile:{p.pk}", f"{p.ca.name} — profile {p.name} (private CA, issued at once)")
        for p in profiles
    ]
    choices.append((EXTERNAL, "An external CA without ACME (CSR; OV/EV)"))
    return choices


def method_of(choice: str) -> dict:
    """ "dns-01:7" → {"method": "dns-01", "dns_provider": 7}."""
    method, _, provider = choice.partition(":")
    return {"method": method, "dns_provider": int(provider) if provider else None}


class OrderForm(forms.Form):
    account = forms.ChoiceField(
        label="Issuer",
        help_text="An ACME account, a profile of a private CA of the project, or an external "
        "CA that signs a CSR (certificate signing request) you submit yourself.",
    )
    domains = forms.CharField(
        label="Domain names",
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "spellcheck": "false", "autocapitalize": "off"}),
        help_text="One per line (or separated by commas). Each becomes a SAN (subject "
        "alternative name) of the certificate; “*.example.com” is a wildcard.",
    )
    method = forms.ChoiceField(
        required=False,
        label="Domain validation (DCV)",
        help_text="How you prove to the CA that you control the names.",
    )
    overrides = forms.CharField(
        label="Other validation per name",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        help_text="Optional, one per line: a name, a space and http-01, dns-01 (manual) or "
        "dns-01:PROVIDER — for example “*.example.com dns-01”.",
    )
    submit_when_dns_ok = forms.BooleanField(
        required=False,
        label="Submit DNS-01 challenges by themselves once the TXT records are visible",
        help_text="Otherwise you press “Submit to CA” for each manual record.",
    )
    key_type = forms.ChoiceField(choices=KEY_TYPES, initial="ec-p256", label="Key type")
    certificate = forms.ModelChoiceField(
        queryset=Certificate.objects.none(),
        required=False,
        label="Certificate",
        empty_label="A new certificate",
        help_text="Or renew an existing certificate: the result becomes its new version.",
    )
    certificate_name = forms.CharField(
        required=False, max_length=200, label="Name of the new certificate"
    )
    labels = forms.CharField(
        required=False,
        label="Labels",
        help_text="KEY=VALUE, separated by spaces (env, app and owner have their own columns).",
    )
    csr = forms.CharField(
        required=False,
        label="Or use your own CSR (PEM)",
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text="With a CSR (certificate signing request) the private key never enters the "
        "console; the names come from the CSR when you give none above.",
    )
    days = forms.IntegerField(
        required=False,
        min_value=1,
        label="Validity in days (private CA)",
        help_text="Empty: the longest the profile allows.",
    )
    external_ca = forms.CharField(
        required=False, max_length=100, label="External CA name", help_text="External CA only."
    )
    validation = forms.ChoiceField(
        required=False,
        choices=VALIDATION_LEVELS,
        initial="DV",
        label="Product (validation level)",
    )
    coverage = forms.ChoiceField(
        required=False, choices=COVERAGES, initial="san", label="Product (names)"
    )
    org_o = forms.CharField(
        required=False,
        max_length=64,
        label="Organisation (O)",
        help_text="OV/EV: the organisation details the CA checks; they go into the CSR.",
    )
    org_ou = forms.CharField(required=False, max_length=64, label="Organisational unit (OU)")
    org_l = forms.CharField(required=False, max_length=128, label="Locality (L)")
    org_st = forms.CharField(required=False, max_length=128, label="State or province (ST)")
    org_c = forms.CharField(
        required=False, min_length=2, max_length=2, label="Country code (C)", help_text="E.g. DE."
    )

    EXTERNAL_FIELDS = (
        "external_ca",
        "validation",
        "coverage",
        "org_o",
        "org_ou",
        "org_l",
        "org_st",
        "org_c",
    )

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        self.fields["account"].choices = issuer_choices(project)
        self.fields["certificate"].queryset = (
            Certificate.objects.filter(project=project).only("id", "name").order_by("name")
        )
        self.fields["method"].choices = method_choices(project)
        providers = DnsProvider.objects.filter(project=project).exclude(
            kind=DnsProvider.Kind.MANUAL
        )
        self.provider_values = {f"dns-01:{p.name}": f"dns-01:{p.pk}" for p in providers}
        if self.provider_values:
            names = ", ".join(sorted(self.provider_values))
            self.fields["overrides"].help_text += f" Providers here: {names}."

    def clean_labels(self) -> dict:
        try:
            return dict(parse_label(item) for item in self.cleaned_data["labels"].split())
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_csr(self) -> bytes | None:
        text = self.cleaned_data["csr"].strip()
        if not text:
            return None
        try:
            self.csr_names = csr_names(text.encode())
        except OrderError as exc:
            raise forms.ValidationError(str(exc)) from None
        return text.encode() + b"\n"

    def main_fields(self) -> list:
        return [field for field in self if field.name not in self.EXTERNAL_FIELDS]

    def external_fields(self) -> list:
        return [self[name] for name in self.EXTERNAL_FIELDS]

    def clean_account(self) -> dict:
        """The issuer as create_order's kind, account and profile."""
        value = self.cleaned_data["account"]
        if value == EXTERNAL:
            return {"kind": Order.Kind.EXTERNAL_CSR, "account": None, "profile": None}
        if value.startswith("profile:"):
            profile = IssuanceProfile.objects.filter(
                ca__project=self.project, pk=value.partition(":")[2]
            ).first()
            return {"kind": Order.Kind.PRIVATE_CA, "account": None, "profile": profile}
        account = AcmeAccount.objects.get(project=self.project, pk=value)
        return {"kind": Order.Kind.ACME, "account": account, "profile": None}

    def clean_domains(self) -> list[str]:
        raw = self.cleaned_data["domains"]
        if str(self.data.get(self.add_prefix("account"), "")).startswith("profile:"):
            from orders.private_ca import normalize_names

            names, errors = normalize_names(raw)  # a private CA may sign localhost
        else:
            names, errors = normalize_domains(raw)
        if errors:
            raise forms.ValidationError(errors)
        return names

    def clean(self):
        data = super().clean()
        issuer = data.get("account") or {}
        if issuer.get("kind") == Order.Kind.EXTERNAL_CSR:
            if data.get("validation") in ("OV", "EV") and not data.get("org_o"):
                self.add_error("org_o", "An OV or EV certificate needs the organisation's name.")
            if not data.get("external_ca"):
                self.add_error("external_ca", "Name the CA you will submit the CSR to.")
        names = data.get("domains") or []
        if data.get("csr") and "domains" in data:
            csr = [n for n in self.csr_names]
            if not names:
                names = data["domains"] = csr
            elif set(names) != set(csr):
                self.add_error("csr", "The CSR asks for other names than the list above.")
        if not names and "domains" in data and not self.errors.get("csr"):
            self.add_error("domains", "Give at least one domain name.")
        if issuer.get("kind", Order.Kind.ACME) == Order.Kind.ACME:
            data["methods"] = self._methods(names, data.get("method"), data.get("overrides", ""))
        else:
            data["methods"] = {}
        return data

    def _methods(self, names: list[str], default: str | None, overrides: str) -> dict:
        valid = {HTTP01: HTTP01, DNS01_MANUAL: DNS01_MANUAL, **self.provider_values}
        chosen = {name: default for name in names}
        for line in overrides.splitlines():
            if not line.strip():
                continue
            parts = line.split()
            found, _ = normalize_domains(parts[:1])
            if len(parts) != 2 or parts[1] not in valid or not found or found[0] not in chosen:
                self.add_error(
                    "overrides", f"“{line.strip()}”: write one ordered name and a method."
                )
                continue
            chosen[found[0]] = valid[parts[1]]
        methods = {}
        for name, choice in chosen.items():
            if choice is None:
                continue
            if requires_dns01(name) and not choice.startswith("dns-01"):
                self.add_error("method", f"{name}: a wildcard can only be validated with DNS-01.")
            methods[name] = method_of(choice)
        return methods

    def external_details(self) -> dict:
        data = self.cleaned_data
        organization = {
            key: data.get(f"org_{key.lower()}", "").strip()
            for key in ("O", "OU", "L", "ST", "C")
            if data.get(f"org_{key.lower()}", "").strip()
        }
        return {
            "ca_name": data.get("external_ca", "").strip(),
            "validation": data.get("validation") or "DV",
            "coverage": data.get("coverage") or "san",
            "organization": organization if data.get("validation") in ("OV", "EV") else {},
        }

    def order_kwargs(self) -> dict:
        data = self.cleaned_data
        issuer = data["account"]
        kind = issuer["kind"]
        return {
            **issuer,
            "external": self.external_details() if kind == Order.Kind.EXTERNAL_CSR else None,
            "days": data.get("days") if kind == Order.Kind.PRIVATE_CA else None,
            "domains": data["domains"],
            "methods": data["methods"],
            "key_type": data["key_type"],
            "certificate": data["certificate"],
            "certificate_name": data["certificate_name"],
            "labels": data["labels"],
            "csr_pem": data["csr"],
            "submit_when_dns_ok": data["submit_when_dns_ok"],
        }


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=500, label="Reason", help_text="Recorded in the audit log.")


class RevokeForm(ReasonForm):
    reason_code = forms.TypedChoiceField(
        choices=REVOCATION_REASONS, coerce=int, initial=0, label="Revocation reason"
    )


class AcmeAccountForm(forms.Form):
    name = forms.CharField(max_length=100)
    preset = forms.ChoiceField(
        required=False,
        label="CA",
        choices=[("", "Custom directory URL (e.g. step-ca)"), *AcmeAccount.PRESETS],
    )
    directory_url = forms.URLField(
        required=False, max_length=500, label="Directory URL", assume_scheme="https"
    )
    email = forms.EmailField(required=False, label="Contact email")
    ca_bundle = forms.CharField(
        required=False,
        label="CA bundle (PEM)",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Only for a private ACME server whose HTTPS certificate is not publicly trusted.",
    )
    eab_kid = forms.CharField(required=False, label="EAB key id")
    eab_hmac = forms.CharField(
        required=False,
        label="EAB HMAC key",
        widget=forms.PasswordInput(render_value=True),
        help_text="External Account Binding, from the CA's dashboard (ZeroSSL, Google, …).",
    )
    agree_tos = forms.BooleanField(label="I agree to the CA's terms of service")

    def clean(self):
        data = super().clean()
        data["directory_url"] = data.get("preset") or data.get("directory_url")
        if not data["directory_url"]:
            self.add_error("directory_url", "Choose a CA or give a directory URL.")
        if bool(data.get("eab_kid")) != bool(data.get("eab_hmac")):
            self.add_error("eab_hmac", "EAB needs both the key id and the HMAC key.")
        return data


class DnsProviderForm(forms.Form):
    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(choices=DnsProvider.Kind.choices)
    options = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        label="Options (JSON)",
        help_text='RFC 2136: {"server", "port", "zone", "tsig_name", "tsig_secret", '
        '"tsig_algorithm"}. Lexicon: {"provider", "zone", "credentials": {…}}. '
        "Secrets are stored encrypted.",
    )

    def clean_options(self) -> dict:
        text = self.cleaned_data["options"].strip() or "{}"
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("Give a JSON object.")
        return value


class OrderPolicyForm(forms.ModelForm):
    class Meta:
        model = OrderPolicy
        fields = ["require_approval"]
        labels = {"require_approval": "Orders need approval by a second person"}


class RenewalPolicyForm(forms.ModelForm):
    """When and how one certificate renews itself."""

    class Meta:
        model = RenewalPolicy
        fields = ["auto_renew", "mode", "days", "use_ari", "reuse_key", "issuer"]
        labels = {"days": "Days before expiry", "issuer": "ACME account for renewals"}
        help_texts = {
            "days": "Used when renewing a number of days before expiry.",
            "reuse_key": "Keep the same private key (default: a new key at each renewal).",
            "issuer": "Empty: the account of the last order.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        project_id = self.instance.certificate.project_id
        self.fields["issuer"].queryset = AcmeAccount.objects.filter(project_id=project_id)
        self.fields["days"].min_value = 1

    def clean_days(self):
        days = self.cleaned_data["days"]
        if days < 1 or days > 3650:
            raise forms.ValidationError("Choose between 1 and 3650 days.")
        return days

    def save_as(self, actor) -> bool:
        """Save and audit with before/after; False when nothing changed."""
        from certconsole.audit import record

        fields = self.Meta.fields
        before = {f: _plain(self.initial.get(f)) for f in fields}
        after = {f: _plain(self.cleaned_data.get(f)) for f in fields}
        if before == after and self.instance.pk:
            return False
        policy = self.save()
        record(actor, "renewal_policy.change", policy.certificate, before=before, after=after)
        return True


def _plain(value):
    """Form values as JSON-friendly audit detail (model instances by id)."""
    return getattr(value, "pk", value)
