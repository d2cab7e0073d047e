"""Projects (resource groups), memberships and the project-scoped queryset."""

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.validators import RegexValidator
from django.db import models, transaction
from django.urls import reverse
from django_otp.models import Device, ThrottlingMixin, TimestampMixin

from certconsole.access.permissions import require
from certconsole.access.roles import Role, roles_granting
from certconsole.audit import record


class ProjectScopedQuerySet(models.QuerySet):
    """A queryset of rows that belong to one project, filtered by the user's rights."""

    project_field = "project"

    def visible_to(self, user, perm: str):
        """Only the rows of projects where the user holds a role granting perm."""
        roles_granting(perm)  # refuses a permission missing from the catalogue
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        from certconsole.access import backends

        # The same computation as has_perm (cached per request), so roles the MFA policy
        # holds back count for lists too: one permission path, exact at every request.
        projects = backends.projects_with(user, perm)
        return self.filter(**{f"{self.project_field}__in": projects})

    def member_of(self, user):
        """The rows of projects where the user holds any role (visible, maybe not permitted)."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        projects = Membership.objects.filter(user=user).values("project_id")
        return self.filter(**{f"{self.project_field}__in": projects})


class ProjectQuerySet(ProjectScopedQuerySet):
    project_field = "id"


slug_validator = RegexValidator(
    r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$",
    "Use 1–50 lower-case letters, digits and hyphens, not starting or ending with a hyphen.",
)


class Project(models.Model):
    """A resource group (team, product, environment) that owns everything else."""

    slug = models.SlugField(max_length=50, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("access:project-detail", args=[self.slug])

    @property
    def project_id(self) -> int:
        """A project belongs to itself, so permission checks treat it like its contents."""
        return self.pk

    @classmethod
    def create(cls, actor, slug: str, name: str = "", description: str = "") -> "Project":
        """Create a project; only superusers (or the system) may."""
        if actor is not None and not actor.is_superuser:
            raise PermissionDenied("Only platform administrators create projects.")
        with transaction.atomic():
            project = cls(slug=slug, name=name or slug, description=description)
            project.full_clean()
            project.save()
            record(actor, "project.create", project, name=project.name)
        return project

    def grant_role(self, actor, user, role: str, reason: str = "") -> "Membership":
        """Give user a role here (idempotent); needs member.manage."""
        from certconsole.access.backends import forget_permissions

        require(actor, "member.manage", self)
        with transaction.atomic():
            membership, created = Membership.objects.get_or_create(
                user=user, project=self, role=role
            )
            if created:
                record(
                    actor,
                    "membership.grant",
                    self,
                    reason=reason,
                    user=user.get_username(),
                    role=role,
                )
        forget_permissions(user)
        return membership

    def revoke_role(self, actor, membership: "Membership", reason: str = "") -> None:
        """Take a role away; the last ProjectAdmin cannot be removed."""
        from certconsole.access.backends import forget_permissions

        require(actor, "member.manage", self)
        with transaction.atomic():
            admins = self.memberships.filter(role=Role.PROJECT_ADMIN)
            if membership.role == Role.PROJECT_ADMIN and admins.count() == 1:
                raise LastAdminError("A project needs at least one ProjectAdmin.")
            membership.delete()
            record(
                actor,
                "membership.revoke",
                self,
                reason=reason,
                user=membership.user.get_username(),
                role=membership.role,
            )
        forget_permissions(membership.user)


class LastAdminError(ValueError):
    """Removing this role would leave the project without a ProjectAdmin."""


class Membership(models.Model):
    """One role of one user in one project; several rows give the union of roles."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project__name", "user__username", "role"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "project", "role"], name="membership_unique_role"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.get_role_display()} in {self.project}"


class UserPreference(models.Model):
    """One user's choices: the project pages open with, and projects whose digests they skip."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference"
    )
    default_project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    digest_opt_out = models.ManyToManyField(
        Project,
        blank=True,
        related_name="+",
        help_text="No reminder digests from these projects, except for certificates you own.",
    )

    def __str__(self) -> str:
        return f"Preferences of {self.user}"


# ---------------------------------------------------------------------------
# Sign-in security (issue 9): second factors, MFA policy, identity provider
# group mappings and the sessions list. The procedures live in mfa.py, sso.py,
# ldap_auth.py and sessions.py.
# ---------------------------------------------------------------------------


def default_mfa_roles() -> list[str]:
    """Roles that need a second factor in a project without its own policy."""
    return list(settings.CERTCONSOLE_MFA_DEFAULT_ROLES)


class MfaPolicy(models.Model):
    """Which roles of one project are only usable with a verified second factor."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="mfa_policy")
    required_roles = models.JSONField(default=default_mfa_roles, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"MFA policy of {self.project}"

    def set_roles(self, actor, roles: list[str], reason: str = "") -> None:
        """Change the roles that need a second factor; needs project.manage."""
        from certconsole.access.backends import forget_permissions

        require(actor, "project.manage", self.project)
        roles = sorted(set(roles) & set(Role.values))
        before = sorted(self.required_roles or [])
        if roles == before and self.pk:
            return
        self.required_roles = roles
        self.save()
        record(actor, "mfa.policy_change", self.project, reason=reason, before=before, after=roles)
        if actor is not None:
            forget_permissions(actor)


class TotpDevice(ThrottlingMixin, TimestampMixin, Device):
    """An authenticator app (TOTP, RFC 6238); the secret is encrypted with the keyring.

    django-otp's own TOTPDevice keeps the secret in clear text, so this device stores
    it as a keyring token and reuses django-otp's TOTP arithmetic (django_otp.oath).
    """

    encrypted_key = models.TextField()
    step = models.PositiveSmallIntegerField(default=30)
    digits = models.PositiveSmallIntegerField(default=6)
    tolerance = models.PositiveSmallIntegerField(default=1)
    # The last time step accepted: a code is never accepted twice (replay).
    last_t = models.BigIntegerField(default=-1)

    class Meta(Device.Meta):
        verbose_name = "TOTP device"

    @property
    def bin_key(self) -> bytes:
        from certconsole import keyring

        return keyring.decrypt(self.encrypted_key)

    def set_key(self, key: bytes) -> None:
        from certconsole import keyring

        self.encrypted_key = keyring.encrypt(key)

    def get_throttle_factor(self) -> int:
        return 1

    def verify_token(self, token) -> bool:
        """Check a code; remembers its time step so the same code cannot be replayed."""
        import time

        from django_otp.oath import TOTP

        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        token = str(token).strip().replace(" ", "")
        verified = False
        if token.isdigit() and len(token) == self.digits:
            totp = TOTP(self.bin_key, self.step, 0, self.digits, 0)
            totp.time = time.time()
            verified = totp.verify(int(token), self.tolerance, self.last_t + 1)
            if verified:
                self.last_t = totp.t()
                self.throttle_reset(commit=False)
                self.set_last_used_timestamp(commit=False)
                self.save()
        if not verified:
            self.throttle_increment(commit=True)
        return verified


class RecoveryCodeDevice(ThrottlingMixin, TimestampMixin, Device):
    """A set of one-time recovery codes, stored only as SHA-256 digests."""

    class Meta(Device.Meta):
        verbose_name = "recovery codes"

    def get_throttle_factor(self) -> int:
        return 1

    def verify_token(self, token) -> bool:
        """Accept an unused code once; used codes stay as rows so their use is visible."""
        from django.utils import timezone

        allowed, _ = self.verify_is_allowed()
        if not allowed:
            return False
        used = self.codes.filter(
            digest=RecoveryCode.digest_of(str(token)), used_at__isnull=True
        ).update(used_at=timezone.now())
        if used:
            self.throttle_reset(commit=False)
            self.set_last_used_timestamp(commit=False)
            self.save()
            return True
        self.throttle_increment(commit=True)
        return False


class RecoveryCode(models.Model):
    """One recovery code (its digest); used_at is set when it is spent."""

    device = models.ForeignKey(RecoveryCodeDevice, on_delete=models.CASCADE, related_name="codes")
    digest = models.CharField(max_length=64)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["device", "digest"], name="recoverycode_unique")
        ]

    def __str__(self) -> str:
        return f"Recovery code of {self.device.user}"

    @staticmethod
    def normalise(code: str) -> str:
        return "".join(ch for ch in code.lower() if ch.isalnum())

    @classmethod
    def digest_of(cls, code: str) -> str:
        import hashlib

        return hashlib.sha256(cls.normalise(code).encode()).hexdigest()


class IdentitySource(models.TextChoices):
    OIDC = "oidc", "OpenID Connect"
    LDAP = "ldap", "LDAP"


class GroupMapping(models.Model):
    """Members of an identity provider group get a role in a project when they sign in."""

    source = models.CharField(max_length=10, choices=IdentitySource.choices)
    group = models.CharField(
        max_length=255, help_text="The group name as the identity provider sends it."
    )
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="group_mappings")
    role = models.CharField(max_length=20, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ProjectScopedQuerySet.as_manager()

    class Meta:
        ordering = ["project__name", "source", "group", "role"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "group", "project", "role"], name="groupmapping_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_source_display()} group {self.group} → {self.role} in {self.project}"

    @classmethod
    def add(cls, actor, project, source: str, group: str, role: str) -> "GroupMapping":
        """Map a group to a role (audited); needs member.manage in the project."""
        require(actor, "member.manage", project)
        with transaction.atomic():
            mapping, created = cls.objects.get_or_create(
                project=project, source=source, group=group.strip(), role=role
            )
            if created:
                record(actor, "group_mapping.add", project, source=source, group=group, role=role)
        return mapping

    def remove(self, actor) -> None:
        """Drop the mapping (audited); memberships it gave go at the members' next sign-in."""
        require(actor, "member.manage", self.project)
        with transaction.atomic():
            self.delete()
            record(
                actor,
                "group_mapping.remove",
                self.project,
                source=self.source,
                group=self.group,
                role=self.role,
            )


class SyncedMembership(models.Model):
    """Marks a membership an identity provider gave, so a later sign-in may take it back."""

    membership = models.OneToOneField(Membership, on_delete=models.CASCADE, related_name="synced")
    source = models.CharField(max_length=10, choices=IdentitySource.choices)

    def __str__(self) -> str:
        return f"{self.membership} (from {self.get_source_display()})"


class UserSession(models.Model):
    """One signed-in browser session, for the active sessions list and sign-out everywhere."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="signed_in_sessions"
    )
    session_key = models.CharField(max_length=40, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField()
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-last_seen"]

    def __str__(self) -> str:
        return f"Session of {self.user} since {self.created_at:%Y-%m-%d %H:%M}"


class ExternalIdentity(models.Model):
    """Links an identity provider's subject to a local user, so a rename at the IdP is harmless."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="external_identities"
    )
    source = models.CharField(max_length=10, choices=IdentitySource.choices)
    subject = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "subject"], name="externalidentity_unique")
        ]

    def __str__(self) -> str:
        return f"{self.get_source_display()} {self.subject} → {self.user}"
