"""acme_account add --project SLUG --name NAME --directory URL --email E [--ca-bundle FILE]
[--eab-kid K --eab-hmac H] [--agree-tos] [--json]: register an ACME account for a project."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from certconsole.audit.context import cli_context
from orders.acme.errors import AcmeError
from orders.management.commands._common import project_or_error
from orders.models import AcmeAccount


class Command(BaseCommand):
    help = "Manage ACME accounts (issuers)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="Register a new account at an ACME CA.")
        add.add_argument("--project", required=True, metavar="SLUG")
        add.add_argument("--name", required=True)
        add.add_argument("--directory", required=True, metavar="URL")
        add.add_argument("--email", default="", metavar="E")
        add.add_argument("--ca-bundle", default=None, metavar="FILE")
        add.add_argument("--eab-kid", default="", metavar="K")
        add.add_argument("--eab-hmac", default="", metavar="H")
        add.add_argument("--agree-tos", action="store_true")
        add.add_argument("--json", action="store_true")

    def handle(self, *args, **options):
        project = project_or_error(options["project"])
        if bool(options["eab_kid"]) != bool(options["eab_hmac"]):
            raise CommandError("--eab-kid and --eab-hmac go together.")
        ca_bundle = Path(options["ca_bundle"]).read_text() if options["ca_bundle"] else ""
        with cli_context():
            try:
                account = AcmeAccount.register(
                    None,
                    project,
                    name=options["name"],
                    directory_url=options["directory"],
                    email=options["email"],
                    agree_tos=options["agree_tos"],
                    ca_bundle=ca_bundle,
                    eab_kid=options["eab_kid"],
                    eab_hmac=options["eab_hmac"],
                )
            except (AcmeError, ValueError) as exc:
                raise CommandError(f"The account was not registered: {exc}") from None
        result = {
            "id": account.pk,
            "project": project.slug,
            "name": account.name,
            "directory_url": account.directory_url,
            "account_uri": account.account_uri,
        }
        if options["json"]:
            self.stdout.write(json.dumps(result))
        else:
            self.stdout.write(f"Registered {account.name}: {account.account_uri}")
