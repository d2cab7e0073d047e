"""Projects (resource groups), memberships and the project-scoped queryset."""

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.validators import RegexValidator
from django.db import models, transaction
from django.urls import reverse

from certconsole.access.permissions import require
from certconsole.access.roles import Role, roles_granting
from certconsole.audit import record


class ProjectScopedQuerySet(models.QuerySet):
    """A queryset of rows that belong to one project, filtered by the user's rights."""

    project_field = "project"

    def visible_to(self, user, perm: str):
        """Only the rows of projects where the user holds a role granting perm."""
        roles = roles_granting(perm)
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self
        projects = Membership.objects.filter(user=user, role__in=roles).values("project_id")
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
