"""dns_provider add --project SLUG --name NAME --kind manual|rfc2136|lexicon --options JSON
[--json]: store a DNS provider for DNS-01 (secrets in the options are stored encrypted)."""

import json

from django.core.management.base import BaseCommand, CommandError

from certconsole.audit.context import cli_context
from orders.management.commands._common import project_or_error
from orders.models import DnsProvider


class Command(BaseCommand):
    help = "Manage DNS providers for DNS-01 validation."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="Add a DNS provider.")
        add.add_argument("--project", required=True, metavar="SLUG")
        add.add_argument("--name", required=True)
        add.add_argument("--kind", required=True, choices=DnsProvider.Kind.values)
        add.add_argument("--options", default="{}", metavar="JSON")
        add.add_argument("--json", action="store_true")

    def handle(self, *args, **options):
        project = project_or_error(options["project"])
        try:
            provider_options = json.loads(options["options"])
        except json.JSONDecodeError as exc:
            raise CommandError(f"--options is not valid JSON: {exc}") from None
        if not isinstance(provider_options, dict):
            raise CommandError("--options must be a JSON object.")
        with cli_context():
            try:
                provider = DnsProvider.create(
                    None,
                    project,
                    name=options["name"],
                    kind=options["kind"],
                    options=provider_options,
                )
            except ValueError as exc:
                raise CommandError(str(exc)) from None
        result = {
            "id": provider.pk,
            "project": project.slug,
            "name": provider.name,
            "kind": provider.kind,
            "options": provider.options,
        }
        if options["json"]:
            self.stdout.write(json.dumps(result))
        else:
            self.stdout.write(f"Saved DNS provider {provider.name} ({provider.kind}).")
