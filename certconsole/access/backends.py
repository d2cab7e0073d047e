"""The one authorization backend: project-scoped permissions from roles."""

from certconsole.access.models import Membership
from certconsole.access.roles import PERMISSIONS, permissions_for

_CACHE_ATTR = "_certconsole_project_perms"


def project_permissions(user, project_id: int) -> frozenset[str]:
    """The user's permissions in one project (cached on the user object for the request)."""
    if not user.is_active or not user.is_authenticated:
        return frozenset()
    cache = getattr(user, _CACHE_ATTR, None)
    if cache is None:
        cache = {}
        roles_by_project: dict[int, list[str]] = {}
        for pid, role in Membership.objects.filter(user=user).values_list("project_id", "role"):
            roles_by_project.setdefault(pid, []).append(role)
        for pid, roles in roles_by_project.items():
            cache[pid] = permissions_for(roles)
        setattr(user, _CACHE_ATTR, cache)
    return cache.get(project_id, frozenset())


def forget_permissions(user) -> None:
    """Drop the cached permissions after a membership change."""
    if hasattr(user, _CACHE_ATTR):
        delattr(user, _CACHE_ATTR)


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
