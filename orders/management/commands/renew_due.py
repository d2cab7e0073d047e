"""renew_due [--json]: run the renewal sweep once (start orders for every due certificate)."""

import json

from django.core.management.base import BaseCommand

from certconsole.audit.context import cli_context
from orders import renewal


class Command(BaseCommand):
    help = "Start renewal orders for every certificate that is due."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options):
        with cli_context():
            orders = renewal.renew_due()
        rows = [
            {"order": o.pk, "certificate": o.certificate.name, "state": o.state} for o in orders
        ]
        if options["json"]:
            self.stdout.write(json.dumps({"started": rows}))
        else:
            for row in rows:
                self.stdout.write(f"Renewal order #{row['order']} for {row['certificate']}")
            self.stdout.write(f"{len(rows)} renewal(s) started.")
