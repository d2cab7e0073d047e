"""Certificates, their versions, the issuer pool and encrypted private keys."""

from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from django.conf import settings
from django.db import models, transaction
from django.db.models import Q
from django.dispatch import Signal
from django.urls import reverse
from django.utils import timezone

from certconsole import keyring
from certconsole.access.models import Project, ProjectScopedQuerySet
from inventory.pki import keys as pki_keys
from inventory.pki.parse import CertInfo

EXPIRING_DAYS = 30

# Sent (after commit) when a certificate gets a new current version: renewal, upload of a
# newer leaf, issuance. Receivers get certificate_id, version_id, previous_version_id.
# Other apps (deployments: auto-redeploy) listen; inventory imports none of them.
version_activated = Signal()


class Source(models.TextChoices):
    UPLOADED = "uploaded", "Uploaded"
    ACME = "acme", "ACME"
    PRIVATE_CA = "private_ca", "Private CA"
    EXTERNAL_CSR = "external_csr", "External CA (CSR)"
    DISCOVERED = "discovered", "Discovered"


class ExpiryStatus(models.TextChoices):
    VALID = "valid", "Valid"
    EXPIRING = "expiring", "Expiring"
    EXPIRED = "expired", "Expired"
    REVOKED = "revoked", "Revoked"
    EMPTY = "empty", "No version"


class CertificateQuerySet(ProjectScopedQuerySet):
    def expiring_within(self, days: int, now=None):
        """Not yet expired, not revoked, and expiring within `days` days."""
        now = now or timezone.now()
        return self.filter(revoked=False, not_after__gt=now, not_after__lte=now + timedelta(days))

    def with_status(self, status: str, now=None):
        """Certificates in one expiry status, as the list colours them."""
        now = now or timezone.now()
        if status == ExpiryStatus.REVOKED:
            return self.filter(revoked=True)
        live = self.filter(revoked=False)
        if status == ExpiryStatus.EXPIRED:
            return live.filter(not_after__lte=now)
        if status == ExpiryStatus.EXPIRING:
            return self.expiring_within(EXPIRING_DAYS, now)
        if status == ExpiryStatus.VALID:
            return live.filter(not_after__gt=now + timedelta(EXPIRING_DAYS))
        if status == ExpiryStatus.EMPTY:
            return self.filter(current_version__isnull=True)
        return self.none()


class Certificate(models.Model):
    """A managed certificate identity that lives across renewals.

    The current version's facts are copied onto this row (not_after, key type,
    issuer, names…) so lists and filters at 100k certificates need no joins.
    """

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="certificates")
    name = models.CharField(max_length=200)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.UPLOADED)
    label_env = models.CharField("environment", max_length=100, blank=True, db_index=True)
    label_app = models.CharField("application", max_length=100, blank=True, db_index=True)
    label_owner = models.CharField("owner", max_length=254, blank=True, db_index=True)
    labels = models.JSONField(default=dict, blank=True, help_text="Free key=value labels.")
    current_version = models.ForeignKey(
        "CertificateVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Copied from the current version (see set_current).
    primary_domain = models.CharField(max_length=255, blank=True)
    san_count = models.PositiveIntegerField(default=0)
    subject = models.TextField(blank=True)
    issuer_name = models.CharField(max_length=255, blank=True, db_index=True)
    key_type = models.CharField(max_length=20, blank=True, db_index=True)
    not_after = models.DateTimeField(null=True, blank=True, db_index=True)
    has_private_key = models.BooleanField(default=False)
    revoked = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CertificateQuerySet.as_manager()

    class Meta:
        ordering = ["not_after", "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="certificate_unique_name")
        ]
        indexes = [
            models.Index(fields=["project", "not_after"], name="cert_project_expiry"),
            models.Index(fields=["project", "name"], name="cert_project_name"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("inventory:certificate-detail", args=[self.pk])

    def status(self, now=None) -> str:
        """valid, expiring (≤30 days), expired, revoked, or empty."""
        now = now or timezone.now()
        if self.current_version_id is None or self.not_after is None:
            return ExpiryStatus.EMPTY
        if self.revoked:
            return ExpiryStatus.REVOKED
        if self.not_after <= now:
            return ExpiryStatus.EXPIRED
        if self.not_after <= now + timedelta(EXPIRING_DAYS):
            return ExpiryStatus.EXPIRING
        return ExpiryStatus.VALID

    def days_left(self, now=None) -> int | None:
        if self.not_after is None:
            return None
        return (self.not_after - (now or timezone.now())).days

    def set_current(self, version: "CertificateVersion") -> None:
        """Make version the active one: older versions are superseded, facts copied here."""
        self.versions.filter(status=CertificateVersion.Status.ACTIVE).exclude(pk=version.pk).update(
            status=CertificateVersion.Status.SUPERSEDED
        )
        previous_id = self.current_version_id
        self.current_version = version
        self.primary_domain = version.primary_domain[:255]
        self.san_count = len(version.sans)
        self.subject = version.subject
        self.issuer_name = version.issuer_common_name[:255]
        self.key_type = version.key_type
        self.not_after = version.not_after
        self.has_private_key = version.private_key_id is not None
        self.revoked = version.status == CertificateVersion.Status.REVOKED
        self.save()
        CertificateName.objects.filter(certificate=self).delete()
        CertificateName.objects.bulk_create(
            [CertificateName(certificate=self, name=n) for n in sorted(set(version.dns_names))]
        )
        if previous_id != version.pk:
            transaction.on_commit(
                lambda: version_activated.send(
                    sender=Certificate,
                    certificate_id=self.pk,
                    version_id=version.pk,
                    previous_version_id=previous_id,
                )
            )


class CertificateName(models.Model):
    """One DNS name of a certificate's current version, lower-case, for search."""

    certificate = models.ForeignKey(Certificate, on_delete=models.CASCADE, related_name="names")
    name = models.CharField(max_length=255, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["certificate", "name"], name="certname_unique")
        ]

    def __str__(self) -> str:
        return self.name


class IssuerCertificate(models.Model):
    """An intermediate or root from the shared pool, deduplicated by SHA-256."""

    sha256 = models.CharField(max_length=64, unique=True)
    der = models.BinaryField()
    subject = models.TextField()
    issuer = models.TextField()
    not_before = models.DateTimeField()
    not_after = models.DateTimeField()
    ski = models.CharField(max_length=128, blank=True, db_index=True)
    self_signed = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["subject"]

    def __str__(self) -> str:
        return self.subject

    def to_x509(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(bytes(self.der))

    @classmethod
    def from_x509(cls, cert: x509.Certificate, info: CertInfo) -> "IssuerCertificate":
        """The pool row for cert, created when new."""
        issuer, _ = cls.objects.get_or_create(
            sha256=info.sha256,
            defaults={
                "der": cert.public_bytes(Encoding.DER),
                "subject": info.subject,
                "issuer": info.issuer,
                "not_before": info.not_before,
                "not_after": info.not_after,
                "ski": info.ski or "",
                "self_signed": info.self_signed,
            },
        )
        return issuer


class PrivateKey(models.Model):
    """A private key, encrypted at rest with the keyring; never logged or shown."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="private_keys")
    encrypted_pkcs8 = models.TextField(help_text="Fernet token of the PKCS#8 DER key.")
    spki_sha256 = models.CharField(max_length=64, db_index=True)
    key_type = models.CharField(max_length=20)
    unmatched = models.BooleanField(
        default=False, help_text="Stored on request although no certificate matched it."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ProjectScopedQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.key_type} key {self.spki_sha256[:16]}…"

    @classmethod
    def seal(cls, project, key, *, unmatched: bool = False) -> "PrivateKey":
        """Encrypt and store key (the same key twice in a project is stored once)."""
        spki = pki_keys.spki_sha256(key)
        existing = cls.objects.filter(project=project, spki_sha256=spki).first()
        if existing is not None:
            return existing
        return cls.objects.create(
            project=project,
            encrypted_pkcs8=keyring.encrypt(pki_keys.private_key_pkcs8_der(key)),
            spki_sha256=spki,
            key_type=pki_keys.key_type(key),
            unmatched=unmatched,
        )

    def unseal(self):
        """The decrypted key object; callers must have checked and audited the export."""
        return pki_keys.load_private_key(keyring.decrypt(self.encrypted_pkcs8))


class CertificateVersionQuerySet(ProjectScopedQuerySet):
    pass


class CertificateVersion(models.Model):
    """One concrete X.509 leaf of a Certificate."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUPERSEDED = "superseded", "Superseded"
        REVOKED = "revoked", "Revoked"

    certificate = models.ForeignKey(Certificate, on_delete=models.CASCADE, related_name="versions")
    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="+")
    der = models.BinaryField()
    sha256 = models.CharField(max_length=64)
    sha1 = models.CharField(max_length=40, db_index=True)
    serial = models.CharField(max_length=100, db_index=True)
    subject = models.TextField()
    issuer = models.TextField()
    common_name = models.TextField(blank=True)
    sans = models.JSONField(default=list, help_text='[{"kind": "dns", "value": "…"}, …]')
    not_before = models.DateTimeField()
    not_after = models.DateTimeField()
    key_type = models.CharField(max_length=20)
    key_size = models.PositiveIntegerField()
    signature_algorithm = models.CharField(max_length=100)
    spki_sha256 = models.CharField(max_length=64, db_index=True)
    chain = models.ManyToManyField(IssuerCertificate, through="ChainLink", related_name="+")
    chain_complete = models.BooleanField(default=False)
    chain_trusted = models.BooleanField(default=False)
    missing_issuer = models.TextField(blank=True)
    private_key = models.ForeignKey(
        PrivateKey, null=True, blank=True, on_delete=models.PROTECT, related_name="versions"
    )
    lint_findings = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revocation_reason = models.CharField(max_length=100, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CertificateVersionQuerySet.as_manager()

    class Meta:
        ordering = ["-not_before", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "sha256"], name="version_unique_in_project")
        ]
        indexes = [models.Index(fields=["sha256"], name="version_sha256")]

    def __str__(self) -> str:
        return f"{self.certificate.name} ({self.serial[:16]})"

    def get_absolute_url(self) -> str:
        return reverse("inventory:certificate-detail", args=[self.certificate_id]) + (
            f"?version={self.sha256}"
        )

    @property
    def dns_names(self) -> list[str]:
        names = [s["value"].lower() for s in self.sans if s["kind"] == "dns"]
        if not names and self.common_name:
            names = [self.common_name.lower()]
        return names

    @property
    def primary_domain(self) -> str:
        names = self.dns_names
        return names[0] if names else (self.common_name or "")

    @property
    def issuer_common_name(self) -> str:
        """The issuer's CN, or the whole issuer name when it has none."""
        for part in self.issuer.split(","):
            if part.startswith("CN="):
                return part[3:]
        return self.issuer

    def to_x509(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(bytes(self.der))

    def chain_x509(self) -> list[x509.Certificate]:
        """The issuers, ordered from the leaf's issuer up to the root."""
        links = self.links.select_related("issuer").order_by("position")
        return [link.issuer.to_x509() for link in links]

    def is_expired(self, now=None) -> bool:
        return self.not_after <= (now or timezone.now())


class ChainLink(models.Model):
    """Position of one pool certificate in a version's chain (1 = the leaf's issuer)."""

    version = models.ForeignKey(CertificateVersion, on_delete=models.CASCADE, related_name="links")
    issuer = models.ForeignKey(IssuerCertificate, on_delete=models.PROTECT, related_name="+")
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["version", "position"], name="chainlink_position")
        ]

    def __str__(self) -> str:
        return f"{self.version_id}#{self.position}"


def name_filter(query: str) -> Q:
    """Names equal to query, or a wildcard covering it (shop.example.com → *.example.com)."""
    query = query.strip().lower().rstrip(".")
    candidates = [query]
    if "." in query:
        candidates.append("*." + query.split(".", 1)[1])
    return Q(names__name__in=candidates)


class StagedUpload(models.Model):
    """Uploaded files held (encrypted) between the preview and the user's confirmation."""

    token = models.UUIDField(unique=True, editable=False, help_text="Random; set by staging.")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    payload = models.TextField(help_text="Fernet token of the JSON files, password and options.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"Staged upload {self.token} by {self.user_id}"


def default_thresholds() -> list[int]:
    return list(NotificationPolicy.DEFAULT_THRESHOLDS)


def default_recipient_roles() -> list[str]:
    return ["projectadmin"]


class NotificationPolicy(models.Model):
    """Who hears about a project's expiring certificates, at which thresholds, and how."""

    DEFAULT_THRESHOLDS = (45, 30, 14, 7, 3, 1, 0)
    WEEKDAYS = ((0, "Mon"), (1, "Tue"), (2, "Wed"), (3, "Thu"), (4, "Fri"), (5, "Sat"), (6, "Sun"))

    project = models.OneToOneField(
        Project, on_delete=models.CASCADE, related_name="notification_policy"
    )
    enabled = models.BooleanField(default=True)
    thresholds = models.JSONField(
        default=default_thresholds, help_text="Days before expiry; 0 means expired."
    )
    notify_owner = models.BooleanField(
        default=True, help_text="Send to the certificate's owner label when it is an address."
    )
    recipient_roles = models.JSONField(default=default_recipient_roles, blank=True)
    extra_recipients = models.JSONField(default=list, blank=True)
    email_enabled = models.BooleanField(default=True)
    webhook_url = models.URLField(max_length=500, blank=True)
    encrypted_webhook_secret = models.TextField(blank=True, help_text="Fernet token.")
    quiet_days = models.JSONField(
        default=list, blank=True, help_text="Weekdays (0 = Monday) on which nothing is sent."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "notification policies"

    def __str__(self) -> str:
        return f"Notification policy of {self.project}"

    @classmethod
    def for_project(cls, project) -> "NotificationPolicy":
        """The project's policy, or the (unsaved) default one."""
        return cls.objects.filter(project=project).first() or cls(project=project)

    @property
    def has_webhook_secret(self) -> bool:
        return bool(self.encrypted_webhook_secret)

    def webhook_secret(self) -> bytes:
        """The decrypted signing secret, for notify only."""
        if not self.encrypted_webhook_secret:
            return b""
        return keyring.decrypt(self.encrypted_webhook_secret)

    def set_webhook_secret(self, secret: str) -> None:
        self.encrypted_webhook_secret = keyring.encrypt(secret.encode()) if secret else ""

    def snapshot(self) -> dict:
        """What the audit log records of the policy (the secret only as present or not)."""
        return {
            "enabled": self.enabled,
            "thresholds": sorted(self.thresholds, reverse=True),
            "notify_owner": self.notify_owner,
            "recipient_roles": sorted(self.recipient_roles),
            "extra_recipients": list(self.extra_recipients),
            "email_enabled": self.email_enabled,
            "webhook_url": self.webhook_url,
            "webhook_secret_set": self.has_webhook_secret,
            "quiet_days": sorted(self.quiet_days),
        }

    def change(self, actor, *, webhook_secret: str | None = None, **fields) -> None:
        """Apply fields (and a new secret unless None), save, and audit before/after."""
        from certconsole.access.permissions import require
        from certconsole.audit import record

        require(actor, "project.manage", self.project)
        before = self.snapshot() if self.pk else None
        for name, value in fields.items():
            setattr(self, name, value)
        self.thresholds = sorted({int(t) for t in self.thresholds}, reverse=True)
        if webhook_secret is not None:
            self.set_webhook_secret(webhook_secret)
        with transaction.atomic():
            self.save()
            record(
                actor,
                "notification_policy.change",
                self.project,
                before=before,
                after=self.snapshot(),
            )


class NotificationLog(models.Model):
    """One reminder or event to one recipient; its unique row is what makes sending happen once.

    Rows are claimed ("sending") before anything goes out, marked "sent" once the mail server
    or webhook accepted it, and "failed" otherwise, which the next run claims again.
    """

    class State(models.TextChoices):
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed (retried next run)"

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Webhook"

    class Kind(models.TextChoices):
        EXPIRY = "expiry", "Expiry reminder"
        RENEWAL_FAILED = "renewal_failed", "Renewal failed"
        DEPLOYMENT_FAILED = "deployment_failed", "Deployment failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    certificate = models.ForeignKey(
        Certificate, on_delete=models.CASCADE, related_name="notifications"
    )
    version = models.ForeignKey(
        CertificateVersion, null=True, on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.EXPIRY)
    threshold = models.SmallIntegerField(null=True, blank=True, help_text="Days; None for events.")
    channel = models.CharField(max_length=10, choices=Channel.choices, default=Channel.EMAIL)
    recipient = models.CharField(max_length=500, help_text="Email address or webhook URL.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.SENDING)
    claim = models.UUIDField(db_index=True, help_text="The run that claimed the row last.")
    message = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=1)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    objects = ProjectScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # Events have no threshold: NULLs never collide, so each event is its own row.
            models.UniqueConstraint(
                fields=["version", "threshold", "channel", "recipient"],
                name="notificationlog_once",
            )
        ]
        indexes = [models.Index(fields=["state", "kind"], name="notificationlog_state")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.certificate_id} to {self.recipient}"
