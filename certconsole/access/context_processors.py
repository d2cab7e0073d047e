"""Navigation context: the user's projects and the one currently selected."""

from certconsole.access.current import current_project, user_projects


def projects(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    return {
        "user_projects": user_projects(user),
        "current_project": current_project(request),
    }
