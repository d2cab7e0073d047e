"""The project switcher: which of the user's projects the pages default to."""

from certconsole.access.models import Project

SESSION_KEY = "current_project_id"
_REQUEST_CACHE = "_certconsole_projects"


def user_projects(user) -> list[Project]:
    """The projects the user belongs to (all of them for superusers), cached per user object."""
    cached = getattr(user, _REQUEST_CACHE, None)
    if cached is None:
        cached = list(Project.objects.member_of(user).order_by("name"))
        setattr(user, _REQUEST_CACHE, cached)
    return cached


def current_project(request) -> Project | None:
    """The selected project, or the user's first one; None if they have none."""
    projects = user_projects(request.user)
    wanted = request.session.get(SESSION_KEY)
    for project in projects:
        if project.pk == wanted:
            return project
    return projects[0] if projects else None


def select_project(request, project: Project) -> None:
    request.session[SESSION_KEY] = project.pk
