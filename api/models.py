"""API tokens (a user's delegated, narrowed rights in one project) and server fetch tokens."""

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.utils import timezone

from certconsole.access.models import Membership, Project, ProjectScopedQuerySet
from certconsole.access.permissions import require
from certconsole.access.roles import PERMISSIONS, ROLE_PERMISSIONS, Role, permissions_for
from certconsole.audit import record
from inventory.models import Certificate

# Read-only tokens keep only these: seeing, downloading public parts, exporting the audit log
# (never a private key).
READ_PERMISSIONS = frozenset(
    p for p in PERMISSIONS if p.endswith(".view") or p in ("certificate.download", "audit.export")
)
RATE_LIMIT_CHOICES = [
    ("60/min", "60 per minute"),
    ("600/min", "600 per minute"),
    ("6000/min", "6000 per minute"),
]


def digest(secret: str) -> str:
    """What is stored of a token: its SHA-256 (the secret is random, so no salt is needed)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _new_secret(kind: str) -> str:
    return f"{kind}_{secrets.token_urlsafe(32)}"


def held_permissions(user, project: Project) -> frozenset[str]:
    """What the user's memberships grant in project now (all of it for platform administrators)."""
    if not user.is_active:
        return frozenset()
    if user.is_superuser:
        return frozenset(PERMISSIONS)
    roles = Membership.objects.filter(user=user, project=project).values_list("role", flat=True)
    return permissions_for(roles)


def grantable_roles(user, project: Project, usable: frozenset[str] | None = None) -> list[str]:
    """Roles whose permissions the user holds entirely in project (a token never exceeds them)."""
    held = held_permissions(user, project) if usable is None else usable
    return [role for role in Role.values if ROLE_PERMISSIONS[role] <= held]


class TokenQuerySet(ProjectScopedQuerySet):
    def active(self, now=None):
        """Not revoked and not expired."""
        now = now or timezone.now()
        return self.filter(revoked_at=None).filter(
            models.Q(expires_at=None) | models.Q(expires_at__gt=now)
        )


class TokenBase(models.Model):
    """Fields every bearer secret shares: hashed value, shown prefix, life and last use."""

    name = models.CharField(max_length=100, help_text="What the token is for (a pipeline, a host).")
    prefix = models.CharField(max_length=16, help_text="The first characters, to recognise it.")
    digest = models.CharField(max_length=64)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = TokenQuerySet.as_manager()

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        now = timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def touch(self) -> None:
        """Remember the use, at most once a minute (a busy token must not write every request)."""
        now = timezone.now()
        if self.last_used_at is None or now - self.last_used_at > timedelta(minutes=1):
            type(self).objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now

    @classmethod
    def find(cls, secret: str):
        """The active token with this secret, or None."""
        if not secret or len(secret) > 200:
            return None
        return (
            cls.objects.active()
            .select_related(*cls.LOOKUP_RELATED)
            .filter(digest=digest(secret))
            .first()
        )


class ApiToken(TokenBase):
    """A REST API token: one user, one project, one role at most theirs, maybe some certificates."""

    KIND = "cct"
    LOOKUP_RELATED = ("user", "project")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="api_tokens")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.VIEWER)
    certificates = models.ManyToManyField(
        Certificate,
        blank=True,
        related_name="+",
        help_text="Only these certificates (and their orders and deployments); empty for all.",
    )
    read_only = models.BooleanField(default=True, help_text="Refuse every change.")
    metrics = models.BooleanField("may read /metrics", default=False)
    rate_limit = models.CharField(max_length=20, choices=RATE_LIMIT_CHOICES, default="600/min")

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["digest"], name="apitoken_unique_digest")]

    def permissions(self) -> frozenset[str]:
        """The token's rights now: its role, within what the user still holds, minus writes."""
        granted = ROLE_PERMISSIONS[self.role] & held_permissions(self.user, self.project)
        return granted & READ_PERMISSIONS if self.read_only else granted

    def certificate_ids(self) -> list[int] | None:
        """The certificate scope (None: every certificate of the project)."""
        if not hasattr(self, "_certificate_ids"):
            ids = list(self.certificates.values_list("pk", flat=True))
            self._certificate_ids = ids or None
        return self._certificate_ids

    @classmethod
    def issue(
        cls,
        actor,
        user,
        project: Project,
        *,
        name: str,
        role: str = Role.VIEWER,
        certificates=(),
        expires_days: int | None = None,
        read_only: bool = True,
        metrics: bool = False,
        rate_limit: str = "600/min",
        usable: frozenset[str] | None = None,
    ) -> tuple["ApiToken", str]:
        """Create a token for user (actor: the user, or None for the system); returns the secret.

        usable: the creator's usable permissions now (web: after the MFA policy), else their roles.
        """
        if actor is not None and actor.pk != user.pk:
            raise PermissionDenied("People create API tokens for themselves only.")
        require(actor, "project.view", project)
        if role not in grantable_roles(user, project, usable):
            raise ValidationError({"role": f"{user} does not hold the role {role} here."})
        certificates = list(certificates)
        if any(c.project_id != project.pk for c in certificates):
            raise ValidationError({"certificates": "Choose certificates of this project."})
        secret = _new_secret(cls.KIND)
        expires_at = timezone.now() + timedelta(days=expires_days) if expires_days else None
        with transaction.atomic():
            token = cls.objects.create(
                user=user,
                project=project,
                role=role,
                name=name,
                prefix=secret[:12],
                digest=digest(secret),
                created_by=actor,
                expires_at=expires_at,
                read_only=read_only,
                metrics=metrics,
                rate_limit=rate_limit,
            )
            token.certificates.set(certificates)
            record(
                actor,
                "api_token.create",
                project,
                token=token.prefix,
                user=user.get_username(),
                role=role,
                read_only=read_only,
                certificates=[c.name for c in certificates],
                expires_at=expires_at,
            )
        return token, secret

    def revoke(self, actor, reason: str = "") -> None:
        """End the token now; its owner, a ProjectAdmin of its project, or the system may."""
        if actor is not None and actor.pk != self.user_id:
            require(actor, "project.manage", self.project)
        with transaction.atomic():
            if (
                type(self)
                .objects.filter(pk=self.pk, revoked_at=None)
                .update(revoked_at=timezone.now())
            ):
                record(actor, "api_token.revoke", self.project, reason=reason, token=self.prefix)
        self.refresh_from_db()


class FetchToken(TokenBase):
    """Lets one server download the current bundle (certificate, chain and key) of one certificate.

    Bound to a binding when given: the server behind that binding, nothing else.
    """

    KIND = "ccf"
    LOOKUP_RELATED = ("project", "certificate", "certificate__current_version")

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="fetch_tokens")
    certificate = models.ForeignKey(Certificate, on_delete=models.CASCADE, related_name="+")
    binding = models.ForeignKey(
        "deployments.Binding", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    format = models.CharField(
        max_length=20,
        default="pem",
        help_text="pem (full chain then key, one file) or a server bundle kind (nginx, haproxy…).",
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["digest"], name="fetchtoken_unique_digest")]

    @classmethod
    def issue(
        cls,
        actor,
        certificate: Certificate,
        *,
        name: str,
        binding=None,
        fmt: str = "pem",
        expires_days: int | None = None,
    ) -> tuple["FetchToken", str]:
        """Create a fetch token; the key leaves with every fetch, so this needs key export."""
        from api.fetch import FORMATS

        require(actor, "certificate.export_key", certificate)
        if binding is not None and binding.certificate_id != certificate.pk:
            raise ValidationError({"binding": "That binding serves another certificate."})
        if fmt not in FORMATS:
            raise ValidationError({"format": f"Choose one of {', '.join(FORMATS)}."})
        secret = _new_secret(cls.KIND)
        expires_at = timezone.now() + timedelta(days=expires_days) if expires_days else None
        with transaction.atomic():
            token = cls.objects.create(
                project=certificate.project,
                certificate=certificate,
                binding=binding,
                format=fmt,
                name=name,
                prefix=secret[:12],
                digest=digest(secret),
                created_by=actor if actor is not None else None,
                expires_at=expires_at,
            )
            record(
                actor,
                "fetch_token.create",
                certificate,
                token=token.prefix,
                binding=binding.pk if binding else None,
                format=fmt,
            )
        return token, secret

    def revoke(self, actor, reason: str = "") -> None:
        require(actor, "certificate.export_key", self.certificate)
        with transaction.atomic():
            if (
                type(self)
                .objects.filter(pk=self.pk, revoked_at=None)
                .update(revoked_at=timezone.now())
            ):
                record(
                    actor, "fetch_token.revoke", self.certificate, reason=reason, token=self.prefix
                )
        self.refresh_from_db()
