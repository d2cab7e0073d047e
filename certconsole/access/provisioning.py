"""Idempotent provisioning used by the `project` and `seed_demo` commands."""

from django.contrib.auth import get_user_model
from django.db import transaction

from certconsole.access.models import Membership, Project
from certconsole.audit import record


def ensure_project(slug: str, name: str = "") -> tuple[Project, bool]:
    """The project with this slug, created (and audited) if missing."""
    project = Project.objects.filter(slug=slug).first()
    if project is not None:
        return project, False
    return Project.create(None, slug, name), True


def ensure_user(username: str, email: str = "", password: str | None = None):
    """The user with this name, created (and audited) if missing; password set when given."""
    User = get_user_model()
    with transaction.atomic():
        user, created = User.objects.get_or_create(username=username, defaults={"email": email})
        if password is not None and (created or not user.check_password(password)):
            user.set_password(password)
            user.save(update_fields=["password"])
            if not created:
                record(None, "user.password_set", user)
        if created:
            if password is None:
                user.set_unusable_password()
                user.save(update_fields=["password"])
            record(None, "user.create", user, email=email)
    return user, created


def ensure_membership(project: Project, user, role: str) -> tuple[Membership, bool]:
    """Grant the role if the user does not hold it yet (grant_role audits)."""
    existing = Membership.objects.filter(project=project, user=user, role=role).first()
    if existing is not None:
        return existing, False
    return project.grant_role(None, user, role), True
