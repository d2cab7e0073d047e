"""order_cert --project SLUG --issuer NAME -d NAME [-d NAME ...] [--method http-01|dns-01]
[--dns-provider NAME] [--key-type …] [--certificate NAME] [--wait [--timeout S]] [--json]
order_cert --project SLUG --issuer CA_NAME [--profile PROFILE] [--days N] -d NAME ... [--json]

The issuer NAME is an ACME account or a private CA of the project; a private CA issues at
once through the same order path (its profile: --profile, or its only profile).

Prints the order's state; with --wait it drives the order in this process until it is
issued or failed (a worker may help; the claim keeps them apart) and exits 1 on failure.
"""

import json
import time

from django.core.management.base import BaseCommand, CommandError

from certconsole.audit.context import cli_context
from inventory.models import Certificate
from orders import issuance
from orders.domains import normalize_domains
from orders.management.commands._common import project_or_error
from orders.models import KEY_TYPES, AcmeAccount, CertificateAuthority, DnsProvider, Order


class Command(BaseCommand):
    help = "Order a certificate from an ACME account of a project."

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, metavar="SLUG")
        parser.add_argument("--issuer", required=True, metavar="NAME")
        parser.add_argument("--profile", default=None, metavar="PROFILE")
        parser.add_argument("--days", type=int, default=None, metavar="N")
        parser.add_argument("-d", "--domain", dest="domains", action="append", required=True)
        parser.add_argument("--method", choices=["http-01", "dns-01"], default=None)
        parser.add_argument("--dns-provider", default=None, metavar="NAME")
        parser.add_argument("--key-type", choices=[k for k, _ in KEY_TYPES], default="ec-p256")
        parser.add_argument("--certificate", default=None, metavar="NAME")
        parser.add_argument("--wait", action="store_true")
        parser.add_argument("--timeout", type=float, default=600.0, metavar="S")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options):
        project = project_or_error(options["project"])
        account = AcmeAccount.objects.filter(project=project, name=options["issuer"]).first()
        profile = None if account else self._profile(project, options)
        if profile is not None:
            from orders.private_ca import normalize_names

            domains, errors = normalize_names(options["domains"])
        else:
            domains, errors = normalize_domains(options["domains"])
        if errors:
            raise CommandError("; ".join(errors))
        with cli_context():
            order = issuance.create_order(
                None,
                project,
                account=account,
                kind=Order.Kind.PRIVATE_CA if profile else Order.Kind.ACME,
                profile=profile,
                days=options["days"],
                domains=domains,
                methods=self._methods(project, domains, options) if account else None,
                key_type=options["key_type"],
                certificate=self._certificate(project, options["certificate"]),
                certificate_name=options["certificate"] or "",
            )
            if options["wait"]:
                order = self._wait(order, options["timeout"])
        self._print(order, options["json"])
        if options["wait"] and order.state != Order.State.ISSUED:
            raise CommandError(
                f"Order #{order.pk} is {order.state}: {order.last_error}", returncode=1
            )

    def _profile(self, project, options):
        ca = CertificateAuthority.objects.filter(project=project, name=options["issuer"]).first()
        if ca is None:
            raise CommandError(
                f"No ACME account or private CA {options['issuer']!r} in {project.slug}."
            )
        profiles = ca.profiles.all()
        if options["profile"]:
            profiles = profiles.filter(name=options["profile"])
        found = list(profiles[:2])
        if len(found) != 1:
            names = ", ".join(ca.profiles.values_list("name", flat=True)) or "none"
            wanted = (
                f"no profile {options['profile']!r}" if options["profile"] else "give --profile"
            )
            raise CommandError(f"{ca.name}: {wanted} (profiles: {names}).")
        return found[0]

    def _methods(self, project, domains, options) -> dict:
        provider = None
        if options["dns_provider"]:
            provider = DnsProvider.objects.filter(project=project, name=options["dns_provider"])
            provider = provider.first()
            if provider is None:
                raise CommandError(f"No DNS provider {options['dns_provider']!r}.")
        methods = {}
        for name in domains:
            method = options["method"] or (
                "dns-01" if provider or name.startswith("*.") else "http-01"
            )
            methods[name] = {
                "method": method,
                "dns_provider": provider.pk if provider and method == "dns-01" else None,
            }
        return methods

    def _certificate(self, project, name):
        if not name:
            return None
        return Certificate.objects.filter(project=project, name=name).first()

    def _wait(self, order: Order, timeout: float) -> Order:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            order.refresh_from_db()
            if order.is_final:
                break
            due = order.next_attempt_at
            if order.state in Order.WORKER_STATES and (due is None or due <= _now()):
                issuance.advance(order.pk)
            else:
                time.sleep(0.2)
        order.refresh_from_db()
        return order

    def _print(self, order: Order, as_json: bool) -> None:
        version = order.issued_version
        result = {
            "order": order.pk,
            "kind": order.kind,
            "state": order.state,
            "domains": order.domains,
            "error": order.last_error or None,
            "sha256": version.sha256 if version else None,
            "certificate": order.certificate.name if order.certificate else None,
        }
        if as_json:
            self.stdout.write(json.dumps(result))
        else:
            line = f"Order #{order.pk}: {order.get_state_display()}"
            if version:
                line += f" — SHA-256 {version.sha256}"
            if order.last_error:
                line += f" — {order.last_error}"
            self.stdout.write(line)


def _now():
    from django.utils import timezone

    return timezone.now()
