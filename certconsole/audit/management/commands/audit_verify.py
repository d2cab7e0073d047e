import json

from django.core.management.base import BaseCommand, CommandError

from certconsole.audit.log import verify_chain


class Command(BaseCommand):
    help = "Verify the audit hash chain; exit non-zero naming the first broken event."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args, **options):
        result = verify_chain()
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "ok": result.ok,
                        "checked": result.checked,
                        "broken_event": result.broken_id,
                        "problem": result.problem or None,
                    }
                )
            )
        if not result.ok:
            raise CommandError(
                f"Audit chain broken at event #{result.broken_id}: {result.problem} "
                f"({result.checked} events before it verified)."
            )
        if not options["json"]:
            self.stdout.write(f"Audit chain intact: {result.checked} events verified.")
