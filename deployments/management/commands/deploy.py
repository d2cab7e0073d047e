"""Roll a certificate version out to its bindings (same procedure, checks and audit as the web).

Without --wait the rollout is queued for a worker; with --wait it runs here and the exit code
says how it went: 0 succeeded (or waits for a manual install), 1 failed or rolled back.
"""

import json

from django.core.management.base import BaseCommand, CommandError

from certconsole.audit.context import cli_context
from deployments import engine, rollout
from deployments.models import Deployment
from inventory.management.commands.export_cert import find_certificate

FAILED = (Deployment.State.FAILED, Deployment.State.ROLLED_BACK, Deployment.State.CANCELLED)


class Command(BaseCommand):
    help = "Deploy a certificate version to its bindings, verified by live handshakes."

    def create_parser(self, prog_name, subcommand, **kwargs):
        # --version names a certificate version here, not Django's version.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("--certificate", required=True, help="The certificate's name.")
        parser.add_argument("--project", help="Project slug; needed when the name is not unique.")
        parser.add_argument(
            "--version", dest="sha256", help="SHA-256 of the version (default: the current one)."
        )
        parser.add_argument("--reason", default="", help="Why (kept in the audit log).")
        parser.add_argument(
            "--wait", action="store_true", help="Run the rollout here and wait for its outcome."
        )
        parser.add_argument("--json", action="store_true", help="Print the rollout as JSON.")

    def handle(self, *args, **options):
        certificate = find_certificate(options["certificate"], options["project"])
        version = None
        if options["sha256"]:
            version = certificate.versions.filter(sha256=options["sha256"].lower()).first()
            if version is None:
                raise CommandError(f"{certificate.name!r} has no version {options['sha256']!r}.")
        with cli_context():
            try:
                deployment = rollout.start_deployment(
                    None,
                    certificate,
                    version,
                    reason=options["reason"],
                    trigger="cli",
                    enqueue_job=not options["wait"],
                )
            except ValueError as exc:
                raise CommandError(str(exc)) from None
            if options["wait"]:
                engine.run_deployment(deployment.pk)
        deployment.refresh_from_db()
        report = rollout.deployment_as_json(deployment)
        if options["json"]:
            self.stdout.write(json.dumps(report))
        else:
            self._describe(report)
        if options["wait"] and deployment.state in FAILED:
            raise CommandError(
                f"Deployment #{deployment.pk} {deployment.get_state_display().lower()}: "
                f"{deployment.last_error}",
                returncode=1,
            )

    def _describe(self, report: dict) -> None:
        self.stdout.write(
            f"Deployment #{report['deployment']} of {report['certificate']} "
            f"({report['version'][:16]}…): {report['state']}"
        )
        for step in report["steps"]:
            line = f"  wave {step['wave']}  {step['state']:<11} {step['target']} "
            line += f"({', '.join(step['sni_names'])} @ {step['probe']})"
            if step["error"]:
                line += f": {step['error']}"
            self.stdout.write(line)
