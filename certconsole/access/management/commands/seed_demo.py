import json

from django.core.management.base import BaseCommand

from certconsole.access.provisioning import ensure_membership, ensure_project, ensure_user
from certconsole.access.roles import Role
from certconsole.audit.context import cli_context

DEMO_SLUG = "demo"


class Command(BaseCommand):
    help = "Create a demo project with one user per role (user name = role in lower case)."

    def add_arguments(self, parser):
        parser.add_argument("--password", required=True, help="Password for every demo user.")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options):
        with cli_context():
            project, project_created = ensure_project(DEMO_SLUG, "Demo")
            users = []
            for role in Role.values:
                user, created = ensure_user(role, f"{role}@demo.invalid", options["password"])
                ensure_membership(project, user, role)
                users.append({"username": user.username, "role": role, "created": created})
        if options["json"]:
            payload = {"project": project.slug, "created": project_created, "users": users}
            self.stdout.write(json.dumps(payload))
        else:
            names = ", ".join(u["username"] for u in users)
            self.stdout.write(f"Demo project “{project.slug}” with users: {names}")
