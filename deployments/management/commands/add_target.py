"""Add a deployment target to a project (same procedure, checks and audit as the web form)."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from certconsole.access.models import Project
from certconsole.audit.context import cli_context
from deployments import rollout
from deployments.drivers import get_driver
from deployments.models import Target


class Command(BaseCommand):
    help = "Add a deployment target: where TLS terminates and how certificates get there."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, metavar="SLUG")
        parser.add_argument("--name", required=True)
        parser.add_argument("--kind", required=True, choices=Target.Kind.values)
        parser.add_argument("--options", required=True, metavar="JSON", help="Driver options.")
        secrets = parser.add_mutually_exclusive_group()
        secrets.add_argument(
            "--credentials", metavar="JSON", help="Secrets (stored encrypted, never shown)."
        )
        secrets.add_argument(
            "--credentials-file",
            metavar="PATH",
            help="Read the credentials JSON from a file (keeps secrets out of the process list).",
        )
        parser.add_argument("--json", action="store_true", help="Print the target as JSON.")

    def handle(self, *args, **options):
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project with the slug {options['project']!r}.")
        target_options = _json_object(options["options"], "--options")
        credentials = None
        if options["credentials_file"]:
            try:
                text = Path(options["credentials_file"]).read_text()
            except OSError as exc:
                raise CommandError(f"Cannot read the credentials file: {exc.strerror}.") from None
            credentials = _json_object(text, "--credentials-file")
        elif options["credentials"]:
            credentials = _json_object(options["credentials"], "--credentials")
        with cli_context():
            try:
                target = rollout.create_target(
                    None, project, options["name"], options["kind"], target_options, credentials
                )
            except ValueError as exc:
                raise CommandError(str(exc)) from None
        description = get_driver(target.kind, target.options).describe()
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "id": target.pk,
                        "project": project.slug,
                        "name": target.name,
                        "kind": target.kind,
                        "options": target.options,
                        "has_credentials": target.has_credentials,
                        "description": description,
                    }
                )
            )
        else:
            self.stdout.write(f"Target {target.name} (#{target.pk}) added: {description}")


def _json_object(text: str, flag: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(f"{flag} is not valid JSON: {exc}.") from None
    if not isinstance(value, dict):
        raise CommandError(f"{flag} must be a JSON object.")
    return value
