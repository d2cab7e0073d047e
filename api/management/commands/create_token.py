import json

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from api.models import ApiToken
from certconsole.access.models import Project
from certconsole.access.roles import Role
from certconsole.audit.context import cli_context
from inventory.models import Certificate


class Command(BaseCommand):
    help = (
        "Create an API token for a user in a project and print it once (role at most the "
        "user's; read-only unless --read-write; audited with source cli)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="Username the token acts for")
        parser.add_argument("--project", required=True, help="Project slug")
        parser.add_argument("--role", default=Role.VIEWER, choices=Role.values)
        parser.add_argument(
            "--certificate",
            action="append",
            default=[],
            metavar="NAME",
            help="Limit the token to this certificate (repeat for several)",
        )
        parser.add_argument("--expires", type=int, default=None, metavar="DAYS")
        parser.add_argument("--name", default="", help="What the token is for")
        parser.add_argument("--read-write", action="store_true", help="Allow changes")
        parser.add_argument("--metrics", action="store_true", help="May read /metrics")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options):
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise CommandError(f"No user {options['user']!r}.")
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project {options['project']!r}.")
        names = options["certificate"]
        certificates = list(Certificate.objects.filter(project=project, name__in=names))
        missing = sorted(set(names) - {c.name for c in certificates})
        if missing:
            raise CommandError(f"No certificate named {', '.join(missing)} in {project.slug}.")
        if options["expires"] is not None and options["expires"] < 1:
            raise CommandError("--expires takes a number of days, at least 1.")
        with cli_context():
            try:
                token, secret = ApiToken.issue(
                    None,
                    user,
                    project,
                    name=options["name"] or f"created by create_token for {user}",
                    role=options["role"],
                    certificates=certificates,
                    expires_days=options["expires"],
                    read_only=not options["read_write"],
                    metrics=options["metrics"],
                )
            except ValidationError as exc:
                raise CommandError("; ".join(exc.messages)) from exc
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "token": secret,
                        "prefix": token.prefix,
                        "user": user.get_username(),
                        "project": project.slug,
                        "role": token.role,
                        "read_only": token.read_only,
                        "certificates": [c.name for c in certificates],
                        "expires_at": token.expires_at.isoformat() if token.expires_at else None,
                    }
                )
            )
        else:
            self.stdout.write(secret)
