"""Send due expiry reminders now (what the daily job does).

--dry-run lists what would be sent without claiming or sending anything; --now pretends the
run happens at another moment (ISO date or date-time, local time zone when naive); --json
prints the run's result as one JSON object. Exit code 1 when some deliveries failed (they are
retried by the next run).
"""

import json
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from certconsole.access.models import Project
from certconsole.audit.context import cli_context
from inventory import reminders


class Command(BaseCommand):
    help = "Send expiry reminder digests that are due (each reminder exactly once)."

    def add_arguments(self, parser):
        parser.add_argument("--project", metavar="SLUG", help="Only this project.")
        parser.add_argument("--dry-run", action="store_true", help="Show, send nothing.")
        parser.add_argument("--now", metavar="ISO-DATE", help="Run as if it were this moment.")
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args, **options):
        project = None
        if options["project"]:
            project = Project.objects.filter(slug=options["project"]).first()
            if project is None:
                raise CommandError(f"No project with the slug {options['project']!r}.")
        now = parse_now(options["now"]) if options["now"] else None
        with cli_context():
            result = reminders.run(project=project, now=now, dry_run=options["dry_run"])
        if options["json"]:
            self.stdout.write(json.dumps(result.as_json()))
        else:
            self._summary(result)
        if result.failed:
            raise CommandError(f"{result.failed} reminder(s) failed; the next run retries.")

    def _summary(self, result) -> None:
        if result.quiet_projects:
            self.stdout.write(f"quiet today: {', '.join(result.quiet_projects)}")
        if result.dry_run:
            for row in result.planned:
                self.stdout.write(
                    f"would send  {row['certificate']} ({row['project']}, {row['threshold']} d) "
                    f"→ {row['channel']} {row['recipient']}"
                )
            self.stdout.write(f"{result.due} reminder(s) due; nothing sent (dry run).")
            return
        for error in result.errors:
            self.stderr.write(f"failed  {error}")
        self.stdout.write(
            f"{result.due} due, {result.claimed} claimed by this run, {result.sent} sent "
            f"({result.emails_sent} email(s), {result.webhooks_sent} webhook call(s)), "
            f"{result.failed} failed."
        )


def parse_now(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--now: {value!r} is not an ISO date or date-time.") from None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment
