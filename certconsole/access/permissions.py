"""Looking objects up for a user: 404 outside their projects, 403 without the permission."""

from django.core.exceptions import PermissionDenied
from django.http import Http404

from certconsole.access.roles import PERMISSIONS, SENSITIVE_PERMISSIONS


def require(user, perm: str, obj) -> None:
    """Raise PermissionDenied unless user may perm on obj; sensitive denials are audited.

    user None means the system itself (command line, jobs), which may do anything.
    """
    if perm not in PERMISSIONS:
        raise KeyError(f"Unknown permission {perm!r}")
    if user is None or user.has_perm(perm, obj):
        return
    if perm in SENSITIVE_PERMISSIONS:
        from certconsole.audit import record

        record(user, "access.denied", obj, permission=perm)
    raise PermissionDenied(f"You need the permission “{PERMISSIONS[perm]}” for this.")


def get_object_for_user(request_or_user, queryset, perm: str, **lookup):
    """Fetch one object for the user: 404 unless they belong to its project, 403 without perm."""
    user = getattr(request_or_user, "user", request_or_user)
    if hasattr(queryset, "_default_manager"):
        queryset = queryset._default_manager.all()
    obj = queryset.member_of(user).filter(**lookup).first()
    if obj is None:
        raise Http404("No such object in your projects.")
    require(user, perm, obj)
    return obj
