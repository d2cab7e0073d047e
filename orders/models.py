"""ACME accounts, private CAs, DNS providers, orders with their authorizations and challenges,
renewal policies.

State changes of an order live in orders/issuance.py (one place for every transition);
the rows here hold the state and the rules that need no CA.
"""

from django.conf import settings
from django.db import models, transaction
from django.urls import reverse
from django.utils import timezone

from certconsole import keyring
from certconsole.access.models import Project, ProjectScopedQuerySet
from certconsole.access.permissions import require
from certconsole.audit import record
from inventory.models import Certificate, CertificateVersion
from orders.dcv import DcvError

KEY_TYPES = [
    ("ec-p256", "ECDSA P-256 (recommended)"),
    ("ec-p384", "ECDSA P-384"),
    ("rsa-2048", "RSA 2048"),
    ("rsa-3072", "RSA 3072"),
    ("rsa-4096", "RSA 4096"),
]

# Certificate.key_type as inventory names it → the order key type that makes the same kind.
KEY_TYPE_FROM_INVENTORY = {
    "EC-P256": "ec-p256",
    "EC-P384": "ec-p384",
    "RSA-2048": "rsa-2048",
    "RSA-3072": "rsa-3072",
    "RSA-4096": "rsa-4096",
}


class OrderPolicy(models.Model):
    """Per-project ordering rules: whether orders wait for a second person's approval."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="order_policy")
    require_approval = models.BooleanField(
        default=False, help_text="Orders wait until a different ProjectAdmin approves them."
    )

    objects = ProjectScopedQuerySet.as_manager()

    def __str__(self) -> str:
        return f"Order policy of {self.project}"

    @classmethod
    def for_project(cls, project) -> "OrderPolicy":
        return cls.objects.filter(project=project).first() or cls(project=project)


class AcmeAccount(models.Model):
    """An account at an ACME CA (directory URL, contact, EAB, encrypted account key)."""

    PRESETS = [
        ("https://acme-v02.api.letsencrypt.org/directory", "Let's Encrypt"),
        ("https://acme-staging-v02.api.letsencrypt.org/directory", "Let's Encrypt staging"),
        ("https://acme.zerossl.com/v2/DV90", "ZeroSSL"),
        ("https://dv.acme-v02.api.pki.goog/directory", "Google Trust Services"),
        ("https://api.buypass.com/acme/directory", "Buypass"),
    ]

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="acme_accounts")
    name = models.CharField(max_length=100)
    directory_url = models.URLField(max_length=500)
    ca_bundle = models.TextField(
        blank=True, help_text="PEM of the CA that signs the directory's own HTTPS (private CAs)."
    )
    email = models.EmailField(blank=True)
    account_uri = models.URLField(max_length=500, blank=True)
    encrypted_account_key = models.TextField(help_text="Fernet token of the account key PEM.")
    eab_kid = models.CharField("EAB key id", max_length=200, blank=True)
    encrypted_eab_hmac = models.TextField(blank=True)
    tos_agreed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ProjectScopedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="acmeaccount_unique_name")
        ]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def register(
        cls,
        actor,
        project,
        *,
        name: str,
        directory_url: str,
        email: str = "",
        agree_tos: bool = False,
        ca_bundle: str = "",
        eab_kid: str = "",
        eab_hmac: str = "",
    ) -> "AcmeAccount":
        """Make an account key, register it at the CA, store the account (issuer.manage)."""
        from orders.acme.client import AcmeConfig, generate_account_key, register_account

        require(actor, "issuer.manage", project)
        if cls.objects.filter(project=project, name=name).exists():
            raise ValueError(f"This project already has an ACME account named {name!r}.")
        key_pem = generate_account_key()
        config = AcmeConfig(directory_url, ca_bundle=ca_bundle or None)
        info = register_account(
            config,
            key_pem,
            email=email or None,
            agree_tos=agree_tos,
            eab_kid=eab_kid or None,
            eab_hmac_key=eab_hmac or None,
        )
        with transaction.atomic():
            account = cls.objects.create(
                project=project,
                name=name,
                directory_url=directory_url,
                ca_bundle=ca_bundle,
                email=email,
                account_uri=info.uri,
                encrypted_account_key=keyring.encrypt(key_pem),
                eab_kid=eab_kid,
                encrypted_eab_hmac=keyring.encrypt(eab_hmac.encode()) if eab_hmac else "",
                tos_agreed_at=timezone.now() if agree_tos else None,
            )
            record(
                actor,
                "issuer.create",
                account,
                directory_url=directory_url,
                account_uri=info.uri,
                eab=bool(eab_kid),
            )
        return account

    def account_key_pem(self) -> bytes:
        return keyring.decrypt(self.encrypted_account_key)

    def config(self):
        from orders.acme.client import AcmeConfig

        return AcmeConfig(self.directory_url, ca_bundle=self.ca_bundle or None)

    def client(self):
        """An ACME client signed in with this account (network access on first use)."""
        from orders.acme.client import AcmeClient

        return AcmeClient(self.config(), self.account_key_pem(), self.account_uri)


class CertificateAuthority(models.Model):
    """A private CA of a project: a root, or an intermediate under a console CA or an external root.

    The key is an inventory PrivateKey (encrypted with the keyring like every key); what it
    signs goes through orders/private_ca.py, which audits every signature.
    """

    class Status(models.TextChoices):
        PENDING_CSR = "pending_csr", "Waiting for the signed certificate"
        ACTIVE = "active", "Active"

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="cas")
    name = models.CharField(max_length=100)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    external_chain_pem = models.TextField(
        blank=True, help_text="The external issuer's chain up to its root (PEM), nearest first."
    )
    csr_pem = models.TextField(blank=True)
    cert_der = models.BinaryField(null=True, blank=True)
    private_key = models.ForeignKey(
        "inventory.PrivateKey", on_delete=models.PROTECT, related_name="+"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    subject = models.TextField()
    key_type = models.CharField(max_length=20)
    path_length = models.PositiveIntegerField(null=True, blank=True)
    permitted_dns = models.JSONField(default=list, blank=True)
    excluded_dns = models.JSONField(default=list, blank=True)
    not_after = models.DateTimeField(null=True, blank=True)
    next_crl_number = models.PositiveBigIntegerField(default=1)
    crl_der = models.BinaryField(null=True, blank=True)
    crl_generated_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ProjectScopedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = "certificate authority"
        verbose_name_plural = "certificate authorities"
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="ca_unique_name")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("orders:ca-detail", args=[self.pk])

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    @property
    def kind(self) -> str:
        if self.parent_id:
            return "Intermediate (console CA)"
        if self.external_chain_pem or self.status == self.Status.PENDING_CSR:
            return "Intermediate (external root)"
        return "Root"

    def cert(self):
        """The CA certificate (None while it waits for the external root's signature)."""
        from cryptography import x509

        return x509.load_der_x509_certificate(bytes(self.cert_der)) if self.cert_der else None

    def chain(self) -> list:
        """The issuers above this CA, nearest first, up to the root ([] for a root)."""
        if self.parent_id:
            return [self.parent.cert(), *self.parent.chain()]
        if self.external_chain_pem:
            from inventory.pki.parse import parse_bundle

            return parse_bundle(self.external_chain_pem.encode()).certificates
        return []

    def material(self):
        """The CaMaterial the pure core signs with (decrypts the key: callers audit)."""
        from orders.ca import CaMaterial

        return CaMaterial(self.cert(), self.private_key.unseal(), self.chain())

    def crl_url(self) -> str | None:
        """The CRL distribution point written into issued certificates, when a base URL is set."""
        base = getattr(settings, "CERTCONSOLE_BASE_URL", "")
        if not base:
            return None
        return base.rstrip("/") + reverse("ca-crl", args=[self.pk, "crl"])


class IssuanceProfile(models.Model):
    """What one private CA may issue: usage, allowed domains, longest validity, SAN types."""

    class Usage(models.TextChoices):
        SERVER = "server", "Server TLS"
        CLIENT = "client", "Client TLS (mTLS)"
        BOTH = "both", "Server and client TLS"

    ca = models.ForeignKey(CertificateAuthority, on_delete=models.CASCADE, related_name="profiles")
    name = models.CharField(max_length=100)
    usage = models.CharField(max_length=10, choices=Usage.choices, default=Usage.SERVER)
    allowed_domains = models.JSONField(default=list, blank=True)
    max_days = models.PositiveIntegerField(default=397)
    san_types = models.JSONField(default=list, blank=True)
    allow_wildcards = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["ca__name", "name"]
        constraints = [models.UniqueConstraint(fields=["ca", "name"], name="profile_unique_name")]

    def __str__(self) -> str:
        return f"{self.ca.name} — {self.name}"

    @property
    def project_id(self) -> int:
        return self.ca.project_id

    def spec(self):
        """The pure-core Profile (orders.ca.Profile) this row describes."""
        from orders.ca import Profile

        return Profile(
            name=self.name,
            usage=self.usage,
            allowed_domains=list(self.allowed_domains) or ["*"],
            max_days=self.max_days,
            san_types=set(self.san_types or ["dns"]),
            allow_wildcards=self.allow_wildcards,
        )


class CaRevocation(models.Model):
    """A certificate a private CA revoked: listed in that CA's CRL from then on."""

    ca = models.ForeignKey(
        CertificateAuthority, on_delete=models.CASCADE, related_name="revocations"
    )
    serial = models.CharField(max_length=100, help_text="Hex, as the inventory shows it.")
    revoked_at = models.DateTimeField()
    reason = models.CharField(max_length=40, default="unspecified")
    version = models.ForeignKey(
        CertificateVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-revoked_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["ca", "serial"], name="carevocation_unique_serial")
        ]

    def __str__(self) -> str:
        return f"{self.serial} revoked by {self.ca}"


class DnsProvider(models.Model):
    """Where DNS-01 TXT records go: by hand, RFC 2136 (TSIG), or a dns-lexicon provider."""

    class Kind(models.TextChoices):
        MANUAL = "manual", "Manual (you add the TXT record)"
        RFC2136 = "rfc2136", "RFC 2136 dynamic update (TSIG)"
        LEXICON = "lexicon", "dns-lexicon provider (Cloudflare, Route 53, Alibaba Cloud DNS, …)"

    # Option keys that are secrets: moved from the options into the encrypted credentials.
    SECRET_OPTIONS = ("tsig_secret", "credentials")

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="dns_providers")
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    options = models.JSONField(default=dict, blank=True)
    encrypted_credentials = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ProjectScopedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="dnsprovider_unique_name")
        ]

    def __str__(self) -> str:
        return self.name

    @classmethod
    def create(cls, actor, project, *, name: str, kind: str, options: dict) -> "DnsProvider":
        """Store a provider (needs issuer.manage); its secrets are encrypted."""
        require(actor, "issuer.manage", project)
        if kind not in cls.Kind.values:
            raise ValueError(f"Unknown kind {kind!r}; choose one of {', '.join(cls.Kind.values)}.")
        if cls.objects.filter(project=project, name=name).exists():
            raise ValueError(f"This project already has a DNS provider named {name!r}.")
        provider = cls(project=project, name=name, kind=kind)
        provider.set_options(options)
        if kind != cls.Kind.MANUAL:
            try:
                provider.solver()
            except (KeyError, TypeError, ValueError, DcvError) as exc:
                raise ValueError(f"The options do not fit a {kind} provider: {exc}") from None
        with transaction.atomic():
            provider.save()
            record(actor, "dns_provider.create", provider, kind=kind, options=provider.options)
        return provider

    def credentials(self) -> dict:
        import json

        if not self.encrypted_credentials:
            return {}
        return json.loads(keyring.decrypt(self.encrypted_credentials))

    def set_options(self, options: dict) -> None:
        """Keep public options in clear, secrets encrypted."""
        import json

        secrets = {k: v for k, v in options.items() if k in self.SECRET_OPTIONS}
        self.options = {k: v for k, v in options.items() if k not in self.SECRET_OPTIONS}
        self.encrypted_credentials = (
            keyring.encrypt(json.dumps(secrets).encode()) if secrets else ""
        )

    def solver(self):
        """The present/cleanup object for this provider; None when records are added by hand."""
        opts, secrets = self.options, self.credentials()
        if self.kind == self.Kind.RFC2136:
            from orders.dcv.rfc2136 import Rfc2136Provider

            return Rfc2136Provider(
                opts["server"],
                int(opts.get("port", 53)),
                opts["zone"],
                opts["tsig_name"],
                secrets["tsig_secret"],
                opts.get("tsig_algorithm", "hmac-sha256"),
            )
        if self.kind == self.Kind.LEXICON:
            from orders.dcv.lexicon_provider import LexiconProvider

            return LexiconProvider(
                opts["provider"], secrets.get("credentials", {}), zone=opts.get("zone")
            )
        return None


class OrderQuerySet(ProjectScopedQuerySet):
    def active(self):
        return self.exclude(state__in=Order.FINAL_STATES)


class Order(models.Model):
    """A request for a certificate from an ACME CA, a private CA or an external CA (CSR)."""

    class Kind(models.TextChoices):
        ACME = "acme", "ACME"
        PRIVATE_CA = "private_ca", "Private CA"
        EXTERNAL_CSR = "external_csr", "External CA (CSR)"

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
        PENDING_VALIDATION = "pending_validation", "Pending validation"
        VALIDATING = "validating", "Validating"
        READY = "ready", "Ready"
        ISSUING = "issuing", "Issuing"
        SUBMITTED = "submitted", "Submitted to CA"
        ISSUED = "issued", "Issued"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    FINAL_STATES = (State.ISSUED, State.FAILED, State.CANCELLED)
    # The states a worker moves forward (the others wait for a person or are final).
    WORKER_STATES = (State.PENDING_VALIDATION, State.VALIDATING, State.READY, State.ISSUING)

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="orders")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.ACME)
    account = models.ForeignKey(
        AcmeAccount,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="orders",
        verbose_name="issuer",
    )
    ca = models.ForeignKey(
        CertificateAuthority, null=True, blank=True, on_delete=models.PROTECT, related_name="orders"
    )
    profile = models.ForeignKey(
        IssuanceProfile, null=True, blank=True, on_delete=models.PROTECT, related_name="orders"
    )
    # External CA orders: {"ca_name", "validation": DV|OV|EV, "coverage": single|san|wildcard,
    # "organization": {"O", "OU", "L", "ST", "C"}}.
    external = models.JSONField(default=dict, blank=True)
    days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Validity asked of a private CA (empty: the profile's)."
    )
    certificate = models.ForeignKey(
        Certificate,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="orders",
        help_text="The certificate this order renews; empty for a new certificate.",
    )
    certificate_name = models.CharField(max_length=200, blank=True)
    domains = models.JSONField(default=list)
    # {"name": {"method": "http-01"|"dns-01", "dns_provider": id|None}}
    methods = models.JSONField(default=dict)
    key_type = models.CharField(max_length=20, choices=KEY_TYPES, default="ec-p256")
    csr_pem = models.TextField(blank=True)
    csr_supplied = models.BooleanField(default=False)
    encrypted_private_key = models.TextField(blank=True)
    labels = models.JSONField(default=dict, blank=True)
    is_renewal = models.BooleanField(default=False)
    submit_when_dns_ok = models.BooleanField(
        "submit DNS-01 when the record is visible",
        default=False,
        help_text="Check manual TXT records regularly and answer the CA once they are served.",
    )
    state = models.CharField(
        max_length=20, choices=State.choices, default=State.DRAFT, db_index=True
    )
    acme_order_url = models.URLField(max_length=500, blank=True)
    finalize_url = models.URLField(max_length=500, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    claimed_until = models.DateTimeField(
        null=True, blank=True, help_text="A worker holds this order until then."
    )
    last_error = models.TextField(blank=True)
    alternate_chains = models.JSONField(default=list, blank=True)
    issued_version = models.ForeignKey(
        CertificateVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="orders"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OrderQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="order_due")]

    def __str__(self) -> str:
        return f"Order #{self.pk} ({', '.join(self.domains[:3])})"

    def get_absolute_url(self) -> str:
        return reverse("orders:order-detail", args=[self.pk])

    @property
    def is_final(self) -> bool:
        return self.state in self.FINAL_STATES

    def private_key_pem(self) -> bytes | None:
        if not self.encrypted_private_key:
            return None
        return keyring.decrypt(self.encrypted_private_key)

    @property
    def issuer_label(self) -> str:
        if self.kind == self.Kind.PRIVATE_CA:
            return f"{self.ca} (private CA), profile {self.profile.name if self.profile else '—'}"
        if self.kind == self.Kind.EXTERNAL_CSR:
            ext = self.external
            return f"{ext.get('ca_name') or 'External CA'} — {ext.get('validation', 'DV')} (CSR)"
        return str(self.account)

    def badge(self) -> str:
        if self.state == self.State.ISSUED:
            return "ok"
        if self.state in (self.State.FAILED, self.State.CANCELLED):
            return "bad" if self.state == self.State.FAILED else "neutral"
        if self.state in (self.State.AWAITING_APPROVAL, self.State.SUBMITTED):
            return "warn"
        return "info"


class Authorization(models.Model):
    """The CA's authorization of one identifier of an order, and how we prove control."""

    class Method(models.TextChoices):
        HTTP01 = "http-01", "HTTP-01"
        DNS01 = "dns-01", "DNS-01"

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="authorizations")
    identifier = models.CharField(max_length=255)
    wildcard = models.BooleanField(default=False)
    url = models.URLField(max_length=500)
    status = models.CharField(max_length=20, default="pending")
    method = models.CharField(max_length=10, choices=Method.choices)
    dns_provider = models.ForeignKey(
        DnsProvider, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    submitted = models.BooleanField(
        default=False, help_text="The challenge was answered (sent to the CA)."
    )
    confirmed = models.BooleanField(
        default=False, help_text="The user says the manual TXT record is in place."
    )
    dns_check = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["identifier", "id"]
        constraints = [models.UniqueConstraint(fields=["order", "url"], name="authz_unique_url")]

    def __str__(self) -> str:
        return f"{'*.' if self.wildcard else ''}{self.identifier}"

    @property
    def display_name(self) -> str:
        return str(self)

    @property
    def manual_dns(self) -> bool:
        return self.method == self.Method.DNS01 and self.dns_provider_id is None

    def chosen_challenge(self) -> "Challenge | None":
        return next((c for c in self.challenges.all() if c.type == self.method), None)


class Challenge(models.Model):
    """One challenge the CA offered for an authorization."""

    authorization = models.ForeignKey(
        Authorization, on_delete=models.CASCADE, related_name="challenges"
    )
    type = models.CharField(max_length=30)
    url = models.URLField(max_length=500)
    token = models.CharField(max_length=200, db_index=True)
    status = models.CharField(max_length=20, default="pending")
    error = models.TextField(blank=True)
    key_authorization = models.CharField(max_length=400, blank=True)
    txt_name = models.CharField(max_length=300, blank=True)
    txt_value = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["type", "id"]

    def __str__(self) -> str:
        return f"{self.type} for {self.authorization}"


class OrderEvent(models.Model):
    """One line of an order's timeline."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(auto_now_add=True)
    kind = models.CharField(max_length=40)
    message = models.TextField()

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.at:%H:%M:%S} {self.kind}"


class RenewalPolicy(models.Model):
    """How and when one certificate renews itself."""

    class Mode(models.TextChoices):
        TWO_THIRDS = "two_thirds", "At two thirds of the lifetime"
        DAYS_BEFORE = "days_before", "A number of days before expiry"

    certificate = models.OneToOneField(
        Certificate, on_delete=models.CASCADE, related_name="renewal_policy"
    )
    auto_renew = models.BooleanField(default=True)
    mode = models.CharField(max_length=20, choices=Mode.choices, default=Mode.TWO_THIRDS)
    days = models.PositiveIntegerField(default=30)
    use_ari = models.BooleanField(
        "use ACME Renewal Information", default=True, help_text="Follow the CA's window (RFC 9773)."
    )
    reuse_key = models.BooleanField(default=False)
    issuer = models.ForeignKey(
        AcmeAccount, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_result = models.TextField(blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "renewal policies"

    def __str__(self) -> str:
        return f"Renewal of {self.certificate}"
