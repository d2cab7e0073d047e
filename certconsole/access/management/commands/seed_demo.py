import json

from django.core.management.base import BaseCommand

from certconsole.access.provisioning import ensure_membership, ensure_project, ensure_user
from certconsole.access.roles import Role
from certconsole.audit.context import cli_context

DEMO_SLUG = "demo"
DEMO_CA = "Demo CA"
# Sample certificates from the built-in CA: (certificate name, names). No network needed.
DEMO_CERTIFICATES = [
    ("localhost", ["localhost"]),
    ("demo-app", ["app.demo.internal", "www.demo.internal"]),
    ("demo-api", ["api.demo.internal"]),
]


class Command(BaseCommand):
    help = (
        "Create a demo project with one user per role (user name = role in lower case), a "
        "built-in private CA (“Demo CA”, profile “server”) and sample certificates from it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--password", required=True, help="Password for every demo user.")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options):
        with cli_context():
            project, project_created = ensure_project(DEMO_SLUG, "Demo")
            users = []
            for role in Role.values:
                user, created = ensure_user(role, f"{role}@demo.invalid", options["password"])
                ensure_membership(project, user, role)
                users.append({"username": user.username, "role": role, "created": created})
            certificates = seed_certificates(project)
        if options["json"]:
            payload = {
                "project": project.slug,
                "created": project_created,
                "users": users,
                "certificates": certificates,
            }
            self.stdout.write(json.dumps(payload))
        else:
            names = ", ".join(u["username"] for u in users)
            self.stdout.write(f"Demo project “{project.slug}” with users: {names}")
            shown = ", ".join(c["name"] for c in certificates)
            self.stdout.write(f"{DEMO_CA} issued: {shown}")


def seed_certificates(project) -> list[dict]:
    """The Demo CA with a server profile, and its sample certificates (each made once)."""
    # orders sits above certconsole: imported here so the access app never needs it otherwise.
    from inventory.models import Certificate
    from orders import issuance, private_ca
    from orders.models import CertificateAuthority, Order

    ca = CertificateAuthority.objects.filter(project=project, name=DEMO_CA).first()
    if ca is None:
        ca = private_ca.create_ca(
            None,
            project,
            name=DEMO_CA,
            subject="CN=CertConsole Demo CA,O=CertConsole demo",
            days=3650,
        )
    profile = ca.profiles.filter(name="server").first() or private_ca.add_profile(
        None, ca, name="server", usage="server", max_days=397, san_types=["dns", "ip"]
    )
    results = []
    for name, domains in DEMO_CERTIFICATES:
        certificate = Certificate.objects.filter(project=project, name=name).first()
        created = certificate is None
        if created:
            order = issuance.create_order(
                None,
                project,
                kind=Order.Kind.PRIVATE_CA,
                profile=profile,
                domains=domains,
                certificate_name=name,
                labels={"env": "demo"},
            )
            certificate = order.certificate
        version = certificate.current_version if certificate else None
        results.append(
            {
                "name": name,
                "domains": domains,
                "sha256": version.sha256 if version else None,
                "created": created,
            }
        )
    return results
