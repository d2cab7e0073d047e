"""Check what every binding and monitored endpoint serves now (the scheduled check, on demand)."""

import json

from django.core.management.base import BaseCommand, CommandError

from certconsole.access.models import Project
from certconsole.audit.context import cli_context
from deployments import monitoring


class Command(BaseCommand):
    help = "Handshake with every binding's probe address and monitored endpoint; store results."

    def add_arguments(self, parser):
        parser.add_argument("--project", metavar="SLUG", help="Only this project.")
        parser.add_argument("--json", action="store_true", help="Print the checks as JSON.")

    def handle(self, *args, **options):
        project = None
        if options["project"]:
            project = Project.objects.filter(slug=options["project"]).first()
            if project is None:
                raise CommandError(f"No project with the slug {options['project']!r}.")
        with cli_context():
            checks = monitoring.check_endpoints(project)
        rows = [_as_json(c) for c in checks]
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "checks": rows,
                        "total": len(rows),
                        "failed": sum(not r["ok"] for r in rows),
                        "drift": sum(r["drift"] for r in rows),
                    }
                )
            )
            return
        for row in rows:
            state = "ok" if row["ok"] else "FAILED"
            if row["drift"]:
                state = "DRIFT"
            detail = row["error"] or f"{(row['served_sha256'] or '')[:16]}… {row['protocol']}"
            self.stdout.write(
                f"{state:<7} {row['server_name']} @ {row['host']}:{row['port']}: {detail}"
            )
        if not rows:
            self.stdout.write("Nothing to check: no bindings or monitored endpoints.")


def _as_json(check) -> dict:
    return {
        "binding": check.binding_id,
        "endpoint": check.endpoint_id,
        "host": check.host,
        "port": check.port,
        "server_name": check.server_name,
        "ok": check.ok,
        "error": check.error or None,
        "served_sha256": check.served_sha256 or None,
        "expected_sha256": check.expected_sha256 or None,
        "drift": check.drift,
        "hostname_matches": check.hostname_matches,
        "chain_complete": check.chain_complete,
        "protocol": check.protocol or None,
        "not_after": check.not_after.isoformat() if check.not_after else None,
        "elapsed_ms": check.elapsed_ms,
    }
