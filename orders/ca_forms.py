"""Forms of the private CA pages and of external CA orders: they validate and normalise."""

from django import forms

from orders.ca import CA_KEY_KINDS
from orders.ca.profiles import SAN_TYPE_NAMES, SAN_TYPES
from orders.models import KEY_TYPES, CertificateAuthority, IssuanceProfile

ROOT, INTERMEDIATE, EXTERNAL_ROOT = "root", "intermediate", "external"


def _lines(text: str) -> list[str]:
    return [part for part in text.replace(",", " ").split() if part]


class CaForm(forms.Form):
    name = forms.CharField(max_length=100)
    kind = forms.ChoiceField(
        label="Kind",
        choices=[
            (ROOT, "Root CA (self-signed)"),
            (INTERMEDIATE, "Intermediate CA signed by a CA of this console"),
            (EXTERNAL_ROOT, "Intermediate CA signed by an external root (CSR out, cert in)"),
        ],
        initial=ROOT,
    )
    parent = forms.ModelChoiceField(
        queryset=CertificateAuthority.objects.none(),
        required=False,
        label="Parent CA",
        help_text="Only for an intermediate signed by a console CA.",
    )
    subject = forms.CharField(
        max_length=500,
        label="Subject",
        help_text="A distinguished name, like CN=Acme Internal Root,O=Acme.",
    )
    key_type = forms.ChoiceField(
        choices=[(k, label) for k, label in KEY_TYPES if k in CA_KEY_KINDS], initial="ec-p256"
    )
    days = forms.IntegerField(min_value=1, max_value=36500, initial=3650, label="Validity (days)")
    path_length = forms.IntegerField(
        min_value=0,
        required=False,
        label="Path length",
        help_text="How many CAs may be below this one (empty: no limit; 0: it signs only leaves).",
    )
    permitted_dns = forms.CharField(
        required=False,
        label="Permitted DNS subtrees",
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
        help_text="Name constraints: the CA may only sign names in these domains "
        "(“internal.example” covers it and every name below). One per line.",
    )
    excluded_dns = forms.CharField(
        required=False,
        label="Excluded DNS subtrees",
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
    )

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["parent"].queryset = CertificateAuthority.objects.filter(
            project=project, status=CertificateAuthority.Status.ACTIVE
        )

    def clean(self):
        data = super().clean()
        if data.get("kind") == INTERMEDIATE and not data.get("parent"):
            self.add_error("parent", "Choose the console CA that signs this intermediate.")
        if data.get("kind") != INTERMEDIATE:
            data["parent"] = None
        return data

    def ca_kwargs(self) -> dict:
        data = self.cleaned_data
        return {
            "name": data["name"],
            "subject": data["subject"],
            "key_type": data["key_type"],
            "days": data["days"],
            "parent": data["parent"],
            "external_root": data["kind"] == EXTERNAL_ROOT,
            "path_length": data["path_length"],
            "permitted_dns": _lines(data["permitted_dns"]),
            "excluded_dns": _lines(data["excluded_dns"]),
        }


class ProfileForm(forms.Form):
    name = forms.CharField(max_length=100)
    usage = forms.ChoiceField(choices=IssuanceProfile.Usage.choices, initial="server")
    allowed_domains = forms.CharField(
        required=False,
        label="Allowed domains",
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        help_text="Patterns, one per line: “*.internal.example” (any name below), "
        "“host.example” (exactly it), “*” (anything). Empty: anything.",
    )
    max_days = forms.IntegerField(min_value=1, initial=397, label="Maximum validity (days)")
    san_types = forms.MultipleChoiceField(
        choices=[(k, SAN_TYPE_NAMES[k]) for k in SAN_TYPES],
        initial=["dns"],
        widget=forms.CheckboxSelectMultiple,
        label="SAN types allowed",
        help_text="Subject alternative names the certificates may carry (URI covers SPIFFE IDs).",
    )
    allow_wildcards = forms.BooleanField(required=False, label="Allow wildcard names")

    def profile_kwargs(self) -> dict:
        data = dict(self.cleaned_data)
        data["allowed_domains"] = _lines(data["allowed_domains"]) or ["*"]
        return data


class SignedCaForm(forms.Form):
    certificate = forms.FileField(label="Signed CA certificate (PEM or DER)")
    chain = forms.FileField(
        required=False,
        label="The external CA's chain (PEM)",
        help_text="Its certificates up to and including the root, unless they are in the file.",
    )


class TruststoreForm(forms.Form):
    password = forms.CharField(
        required=False,
        max_length=100,
        label="Trust store password",
        help_text="Empty: “changeit”, the Java default.",
    )


class CertificateUploadForm(forms.Form):
    file = forms.FileField(
        label="The CA's certificate",
        help_text="Any format the inventory reads: PEM, DER, PKCS#7, PKCS#12 (with its password).",
    )
    password = forms.CharField(
        required=False, widget=forms.PasswordInput, label="Password (PKCS#12 only)"
    )
