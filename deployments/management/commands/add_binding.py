"""Bind a certificate to a target (same procedure, checks and audit as the web form)."""

import json

from django.core.management.base import BaseCommand, CommandError

from certconsole.audit.context import cli_context
from deployments import rollout
from deployments.models import Target
from inventory.management.commands.export_cert import find_certificate


class Command(BaseCommand):
    help = "Bind a certificate to a target: the names it serves and where to verify them."

    def add_arguments(self, parser):
        parser.add_argument("--certificate", required=True, help="The certificate's name.")
        parser.add_argument("--project", help="Project slug; needed when the name is not unique.")
        parser.add_argument("--target", required=True, help="The target's name.")
        parser.add_argument(
            "--sni", action="append", required=True, metavar="NAME", help="Repeat for each name."
        )
        parser.add_argument(
            "--probe", required=True, metavar="HOST:PORT", help="Where the live check connects."
        )
        parser.add_argument("--wave", type=int, default=1, help="Rollout wave (1, 2, …).")
        parser.add_argument(
            "--no-auto-redeploy",
            dest="auto_redeploy",
            action="store_false",
            help="Do not redeploy automatically when a new version becomes current.",
        )
        parser.add_argument("--json", action="store_true", help="Print the binding as JSON.")

    def handle(self, *args, **options):
        certificate = find_certificate(options["certificate"], options["project"])
        target = Target.objects.filter(
            project=certificate.project_id, name=options["target"]
        ).first()
        if target is None:
            raise CommandError(
                f"No target called {options['target']!r} in project {certificate.project.slug!r}."
            )
        with cli_context():
            try:
                host, port = rollout.parse_address(options["probe"])
                binding = rollout.create_binding(
                    None,
                    certificate,
                    target,
                    options["sni"],
                    host,
                    port,
                    wave=options["wave"],
                    auto_redeploy=options["auto_redeploy"],
                )
            except ValueError as exc:
                raise CommandError(str(exc)) from None
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "id": binding.pk,
                        "certificate": certificate.name,
                        "project": certificate.project.slug,
                        "target": target.name,
                        "sni_names": binding.sni_names,
                        "probe": binding.probe_address,
                        "wave": binding.wave,
                        "auto_redeploy": binding.auto_redeploy,
                    }
                )
            )
        else:
            self.stdout.write(
                f"Binding #{binding.pk} added: {binding}, probed at {binding.probe_address}"
            )
