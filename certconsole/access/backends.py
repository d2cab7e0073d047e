"""The one authorization backend: project-scoped permissions from roles."""

from django.conf import settings

from certconsole.access.models import Membership
from certconsole.access.roles import PERMISSIONS, permissions_for

_CACHE_ATTR = "_certconsole_project_perms"
_WITHHELD_ATTR = "_certconsole_mfa_withheld"


def project_permissions(user, project_id: int) -> frozenset[str]:
    """The user's permissions in one project (cached on the user object for the request).

    Roles the project's MFA policy reserves for users with a verified second factor
    count only when the user has one (in a request: when this session proved it).
    """
    if not user.is_active or not user.is_authenticated:
        return frozenset()
    cache = getattr(user, _CACHE_ATTR, None)
    if cache is None:
        cache, withheld = _compute(user)
        setattr(user, _CACHE_ATTR, cache)
        setattr(user, _WITHHELD_ATTR, withheld)
    return cache.get(project_id, frozenset())


def _compute(user) -> tuple[dict[int, frozenset[str]], frozenset[str]]:
    from certconsole.access import mfa

    default_required = set(settings.CERTCONSOLE_MFA_DEFAULT_ROLES)
    rows = Membership.objects.filter(user=user).values_list(
        "project_id", "role", "project__mfa_policy__required_roles"
    )
    roles_by_project: dict[int, list[str]] = {}
    needing: set[tuple[int, str]] = set()
    for pid, role, required in rows:
        roles_by_project.setdefault(pid, []).append(role)
        if role in (default_required if required is None else set(required)):
            needing.add((pid, role))
    withheld: set[str] = set()
    if needing and not mfa.satisfied(user):
        withheld = {role for _, role in needing}
        for pid, role in needing:
            roles_by_project[pid].remove(role)
    cache = {pid: permissions_for(roles) for pid, roles in roles_by_project.items()}
    return cache, frozenset(withheld)


def projects_with(user, perm: str) -> list[int]:
    """Ids of the projects where the user's usable roles grant perm."""
    project_permissions(user, 0)
    return [pid for pid, perms in getattr(user, _CACHE_ATTR).items() if perm in perms]


def withheld_roles(user) -> frozenset[str]:
    """The roles the user holds somewhere but cannot use until they prove a second factor."""
    project_permissions(user, 0)
    return getattr(user, _WITHHELD_ATTR, frozenset())


def restrict_permissions(user, project_id: int, perms: frozenset[str]) -> None:
    """Make user hold exactly perms in one project and nothing elsewhere (an API token's view)."""
    setattr(user, _CACHE_ATTR, {project_id: frozenset(perms)})
    setattr(user, _WITHHELD_ATTR, frozenset())


def forget_permissions(user) -> None:
    """Drop the cached permissions after a membership change."""
    for attr in (_CACHE_ATTR, _WITHHELD_ATTR):
        if hasattr(user, attr):
            delattr(user, attr)


class ProjectRoleBackend:
    """has_perm(user, "certificate.view", obj) is True when a role in obj's project grants it.

    Superusers are granted everything by Django before this backend is asked.
    Without an object there is no project, so nothing is granted here.
    """

    def authenticate(self, request, **credentials):
        return None

    def has_perm(self, user_obj, perm: str, obj=None) -> bool:
        if obj is None or perm not in PERMISSIONS:
            return False
        project_id = getattr(obj, "project_id", None)
        if project_id is None:
            return False
        return perm in project_permissions(user_obj, project_id)
