import json

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from certconsole.access.provisioning import ensure_membership, ensure_project, ensure_user
from certconsole.access.roles import Role
from certconsole.audit.context import cli_context


class Command(BaseCommand):
    help = "Create projects and add members (idempotent; audited with source cli)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create", help="Create a project.")
        create.add_argument("slug")
        create.add_argument("--name", default="")
        create.add_argument("--json", action="store_true")
        member = sub.add_parser("add-member", help="Give a user a role in a project.")
        member.add_argument("slug")
        member.add_argument("username")
        member.add_argument("role", help=f"One of: {', '.join(Role.values)}")
        member.add_argument("--create-user", action="store_true")
        member.add_argument("--email", default="")
        member.add_argument("--json", action="store_true")

    def handle(self, *args, **options):
        with cli_context():
            try:
                result = getattr(self, options["action"].replace("-", "_"))(options)
            except ValidationError as exc:
                raise CommandError("; ".join(exc.messages)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(result))
        else:
            self.stdout.write(result["message"])

    def create(self, options):
        project, created = ensure_project(options["slug"], options["name"])
        verb = "Created" if created else "Already exists:"
        return {
            "project": project.slug,
            "name": project.name,
            "created": created,
            "message": f"{verb} project {project.slug}",
        }

    def add_member(self, options):
        role = options["role"].lower()
        if role not in Role.values:
            raise CommandError(f"Unknown role {options['role']!r}; use one of {Role.values}.")
        project = ensure_project_exists(options["slug"])
        username = options["username"]
        user = get_user_model().objects.filter(username=username).first()
        user_created = False
        if user is None:
            if not options["create_user"]:
                raise CommandError(f"No user {username!r}; pass --create-user to create one.")
            user, user_created = ensure_user(username, options["email"])
        _, granted = ensure_membership(project, user, role)
        return {
            "project": project.slug,
            "user": user.username,
            "role": role,
            "user_created": user_created,
            "granted": granted,
            "message": f"{user.username} is {Role(role).label} in {project.slug}"
            + ("" if granted else " (unchanged)"),
        }


def ensure_project_exists(slug):
    from certconsole.access.models import Project

    project = Project.objects.filter(slug=slug).first()
    if project is None:
        raise CommandError(f"No project {slug!r}; create it with `project create {slug}`.")
    return project
