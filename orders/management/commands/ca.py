"""ca create | profile | show | crl — private CAs from the command line.

  ca create --project SLUG --name NAME [--parent CA_NAME] [--key-type …] [--subject "CN=…"]
            [--days N] [--path-length N] [--permit-dns SUFFIX …] [--exclude-dns SUFFIX …]
            [--external-root] [--json]
  ca profile --ca NAME --name PROFILE --usage server|client|both [--max-days N]
             [--allow PATTERN …] [--san-types dns,ip,…] [--wildcards] [--json]
  ca show NAME [--pem] [--json]
  ca crl NAME            (prints the current CRL, PEM)

A CA NAME is looked up across projects; give --project when two projects use the same name.
"""

import json

from django.core.management.base import BaseCommand, CommandError

from certconsole.audit.context import cli_context
from inventory.pki.errors import PkiError
from orders import private_ca
from orders.ca import CA_KEY_KINDS
from orders.ca.profiles import USAGES
from orders.management.commands._common import project_or_error
from orders.models import CertificateAuthority


def find_ca(name: str, project_slug: str | None = None) -> CertificateAuthority:
    cas = CertificateAuthority.objects.filter(name=name).select_related("project")
    if project_slug:
        cas = cas.filter(project__slug=project_slug)
    found = list(cas[:2])
    if not found:
        raise CommandError(f"No CA named {name!r}.")
    if len(found) > 1:
        raise CommandError(f"Several projects have a CA named {name!r}; give --project.")
    return found[0]


def ca_json(ca: CertificateAuthority) -> dict:
    return {
        "id": ca.pk,
        "project": ca.project.slug,
        "name": ca.name,
        "kind": ca.kind,
        "status": ca.status,
        "subject": ca.subject,
        "key_type": ca.key_type,
        "parent": ca.parent.name if ca.parent_id else None,
        "not_after": ca.not_after.isoformat() if ca.not_after else None,
        "permitted_dns": ca.permitted_dns,
        "excluded_dns": ca.excluded_dns,
        "profiles": [p.name for p in ca.profiles.all()],
        "crl_url": ca.crl_url(),
    }


class Command(BaseCommand):
    help = "Create private CAs and profiles, print a CA certificate or its CRL."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create")
        create.add_argument("--project", required=True, metavar="SLUG")
        create.add_argument("--name", required=True)
        create.add_argument("--parent", metavar="CA_NAME")
        create.add_argument("--key-type", choices=CA_KEY_KINDS, default="ec-p256")
        create.add_argument("--subject")
        create.add_argument("--days", type=int, default=3650)
        create.add_argument("--path-length", type=int)
        create.add_argument(
            "--permit-dns", nargs="+", action="extend", default=[], metavar="SUFFIX"
        )
        create.add_argument(
            "--exclude-dns", nargs="+", action="extend", default=[], metavar="SUFFIX"
        )
        create.add_argument("--external-root", action="store_true")
        create.add_argument("--json", action="store_true")
        profile = sub.add_parser("profile")
        profile.add_argument("--ca", required=True, metavar="NAME")
        profile.add_argument("--project", metavar="SLUG")
        profile.add_argument("--name", required=True)
        profile.add_argument("--usage", choices=USAGES, required=True)
        profile.add_argument("--max-days", type=int, default=397)
        profile.add_argument("--allow", nargs="+", action="extend", default=[], metavar="PATTERN")
        profile.add_argument("--san-types", default="dns")
        profile.add_argument("--wildcards", action="store_true")
        profile.add_argument("--json", action="store_true")
        for name in ("show", "crl"):
            cmd = sub.add_parser(name)
            cmd.add_argument("ca_name", metavar="NAME")
            cmd.add_argument("--project", metavar="SLUG")
            cmd.add_argument("--pem", action="store_true")
            cmd.add_argument("--json", action="store_true")

    def handle(self, *args, **options):
        try:
            with cli_context():
                getattr(self, f"_{options['action']}")(options)
        except PkiError as exc:
            raise CommandError(str(exc)) from None

    def _create(self, options) -> None:
        project = project_or_error(options["project"])
        parent = None
        if options["parent"]:
            parent = find_ca(options["parent"], project.slug)
        ca = private_ca.create_ca(
            None,
            project,
            name=options["name"],
            subject=options["subject"] or f"CN={options['name']}",
            key_type=options["key_type"],
            days=options["days"],
            parent=parent,
            external_root=options["external_root"],
            path_length=options["path_length"],
            permitted_dns=options["permit_dns"],
            excluded_dns=options["exclude_dns"],
        )
        if options["json"]:
            payload = ca_json(ca)
            if ca.csr_pem:
                payload["csr_pem"] = ca.csr_pem
            self.stdout.write(json.dumps(payload))
        else:
            self.stdout.write(f"CA “{ca.name}” created ({ca.kind}, {ca.get_status_display()}).")
            if ca.csr_pem:
                self.stdout.write(ca.csr_pem)

    def _profile(self, options) -> None:
        ca = find_ca(options["ca"], options["project"])
        profile = private_ca.add_profile(
            None,
            ca,
            name=options["name"],
            usage=options["usage"],
            allowed_domains=options["allow"] or ["*"],
            max_days=options["max_days"],
            san_types=[t for t in options["san_types"].split(",") if t],
            allow_wildcards=options["wildcards"],
        )
        result = {
            "id": profile.pk,
            "ca": ca.name,
            "name": profile.name,
            "usage": profile.usage,
            "max_days": profile.max_days,
            "allowed_domains": profile.allowed_domains,
            "san_types": profile.san_types,
            "allow_wildcards": profile.allow_wildcards,
        }
        if options["json"]:
            self.stdout.write(json.dumps(result))
        else:
            self.stdout.write(f"Profile “{profile.name}” added to {ca.name}.")

    def _show(self, options) -> None:
        ca = find_ca(options["ca_name"], options["project"])
        if options["pem"]:
            if not ca.is_active:
                raise CommandError(
                    f"{ca.name} waits for its signed certificate; its CSR:\n{ca.csr_pem}"
                )
            self.stdout.write(private_ca.download(ca, "pem")[0].decode(), ending="")
        elif options["json"]:
            self.stdout.write(json.dumps(ca_json(ca)))
        else:
            info = ca_json(ca)
            for key, value in info.items():
                self.stdout.write(f"{key}: {value}")

    def _crl(self, options) -> None:
        ca = find_ca(options["ca_name"], options["project"])
        if not ca.is_active:
            raise CommandError(f"{ca.name} is not active yet: it has no CRL.")
        crl = private_ca.current_crl(ca)
        self.stdout.write(private_ca.core.crl_pem(crl).decode(), ending="")
