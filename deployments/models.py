"""Targets, bindings, deployments (rollouts) and endpoint checks."""

import json

from django.conf import settings
from django.db import models
from django.urls import reverse

from certconsole import keyring
from certconsole.access.models import Project, ProjectScopedQuerySet
from deployments.drivers import KIND_LABELS
from inventory.models import Certificate, CertificateVersion


class Target(models.Model):
    """Where TLS terminates: a driver kind, its JSON options and encrypted credentials."""

    class Kind(models.TextChoices):
        NGINX_LOCAL = "nginx_local", KIND_LABELS["nginx_local"]
        SSH = "ssh", KIND_LABELS["ssh"]
        HAPROXY = "haproxy", KIND_LABELS["haproxy"]
        WEBHOOK = "webhook", KIND_LABELS["webhook"]
        MANUAL = "manual", KIND_LABELS["manual"]

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="targets")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    options = models.JSONField(default=dict, blank=True)
    encrypted_credentials = models.TextField(blank=True, help_text="Fernet token of a JSON dict.")
    allow_private_key = models.BooleanField(
        default=True, help_text="Send the private key to this target (webhooks may not need it)."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProjectScopedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="target_unique_name")
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("deployments:target-detail", args=[self.pk])

    @property
    def has_credentials(self) -> bool:
        return bool(self.encrypted_credentials)

    def set_credentials(self, credentials: dict | None) -> None:
        """Encrypt credentials at rest; they are never shown again."""
        self.encrypted_credentials = (
            keyring.encrypt(json.dumps(credentials).encode()) if credentials else ""
        )

    def credentials(self) -> dict:
        """Decrypted credentials, for the driver only."""
        if not self.encrypted_credentials:
            return {}
        return json.loads(keyring.decrypt(self.encrypted_credentials))


class Binding(models.Model):
    """A certificate served by a target: SNI names, where to verify, rollout wave."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="+")
    certificate = models.ForeignKey(Certificate, on_delete=models.CASCADE, related_name="bindings")
    target = models.ForeignKey(Target, on_delete=models.PROTECT, related_name="bindings")
    sni_names = models.JSONField(default=list, help_text="Server names the target serves it for.")
    probe_host = models.CharField(max_length=255)
    probe_port = models.PositiveIntegerField(default=443)
    wave = models.PositiveSmallIntegerField(default=1)
    auto_redeploy = models.BooleanField(default=True)
    deployed_version = models.ForeignKey(
        CertificateVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    deployed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ProjectScopedQuerySet.as_manager()

    class Meta:
        ordering = ["wave", "id"]

    def __str__(self) -> str:
        names = ", ".join(self.sni_names[:3])
        return f"{self.certificate} on {self.target} ({names})"

    @property
    def probe_address(self) -> str:
        host = f"[{self.probe_host}]" if ":" in self.probe_host else self.probe_host
        return f"{host}:{self.probe_port}"


class Deployment(models.Model):
    """One rollout of one version over bindings, wave by wave, each push verified live."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        PAUSED = "paused", "Paused between waves"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        ROLLED_BACK = "rolled_back", "Failed and rolled back"
        CANCELLED = "cancelled", "Cancelled"

    FINAL_STATES = (State.SUCCEEDED, State.FAILED, State.ROLLED_BACK, State.CANCELLED)

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="+")
    certificate = models.ForeignKey(
        Certificate, on_delete=models.CASCADE, related_name="deployments"
    )
    version = models.ForeignKey(CertificateVersion, on_delete=models.PROTECT, related_name="+")
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING)
    is_rollback = models.BooleanField(default=False)
    pause_between_waves = models.BooleanField(default=False)
    current_wave = models.PositiveSmallIntegerField(default=0)
    reason = models.TextField(blank=True)
    trigger = models.CharField(max_length=20, default="manual")  # manual, renewal, rollback, cli
    last_error = models.TextField(blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Touched by the worker as it goes; a RUNNING rollout with an old heartbeat was abandoned
    # by a killed worker and may be claimed again (rollout.resume_stalled).
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    objects = ProjectScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Deployment #{self.pk} of {self.certificate}"

    def get_absolute_url(self) -> str:
        return reverse("deployments:deployment-detail", args=[self.pk])

    @property
    def finished(self) -> bool:
        return self.state in self.FINAL_STATES


class DeploymentStep(models.Model):
    """One binding within a deployment: pushed, verified, maybe rolled back."""

    class State(models.TextChoices):
        WAITING = "waiting", "Waiting"
        PUSHING = "pushing", "Pushing"
        VERIFYING = "verifying", "Verifying"
        AWAITING_LIVE_CHECK = "awaiting", "Waiting for the live check"
        DONE = "done", "Deployed and verified"
        FAILED = "failed", "Failed"
        ROLLED_BACK = "rolled_back", "Rolled back"
        SKIPPED = "skipped", "Skipped"

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="steps")
    binding = models.ForeignKey(Binding, on_delete=models.CASCADE, related_name="steps")
    wave = models.PositiveSmallIntegerField()
    state = models.CharField(max_length=20, choices=State.choices, default=State.WAITING)
    previous_version = models.ForeignKey(
        CertificateVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    summary = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["wave", "id"]
        constraints = [
            models.UniqueConstraint(fields=["deployment", "binding"], name="step_unique_binding")
        ]

    def __str__(self) -> str:
        return f"{self.deployment} → {self.binding}"


class MonitoredEndpoint(models.Model):
    """A TLS endpoint watched without a binding (host:port + SNI)."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="+")
    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField(default=443)
    server_name = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ProjectScopedQuerySet.as_manager()

    class Meta:
        ordering = ["server_name", "host", "port"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "host", "port", "server_name"], name="endpoint_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.server_name} @ {self.host}:{self.port}"


class EndpointCheck(models.Model):
    """The result of one synthetic TLS check of a binding's probe address or an endpoint."""

    project = models.ForeignKey(Project, on_delete=models.PROTECT, related_name="+")
    binding = models.ForeignKey(
        Binding, null=True, blank=True, on_delete=models.CASCADE, related_name="checks"
    )
    endpoint = models.ForeignKey(
        MonitoredEndpoint, null=True, blank=True, on_delete=models.CASCADE, related_name="checks"
    )
    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField()
    server_name = models.CharField(max_length=255)
    checked_at = models.DateTimeField(db_index=True)
    ok = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    served_sha256 = models.CharField(max_length=64, blank=True)
    expected_sha256 = models.CharField(max_length=64, blank=True)
    drift = models.BooleanField(default=False, help_text="Served certificate is not the bound one.")
    hostname_matches = models.BooleanField(default=False)
    chain_complete = models.BooleanField(default=False)
    protocol = models.CharField(max_length=20, blank=True)
    not_after = models.DateTimeField(null=True, blank=True)
    elapsed_ms = models.PositiveIntegerField(default=0)

    objects = ProjectScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-checked_at"]
        indexes = [models.Index(fields=["binding", "-checked_at"], name="check_binding_recent")]

    def __str__(self) -> str:
        return f"{self.server_name} @ {self.host}:{self.port} ({'ok' if self.ok else 'failed'})"


class BundleGrant(models.Model):
    """A short-lived, single-use URL from which a webhook receiver fetches one bundle.

    Only the SHA-256 of the token is stored; the token itself travels once, inside the
    signed webhook notice.
    """

    step = models.ForeignKey(DeploymentStep, on_delete=models.CASCADE, related_name="grants")
    token_sha256 = models.CharField(max_length=64, unique=True)
    include_key = models.BooleanField(default=False)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    used_from = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Bundle grant for {self.step}"
