"""Write a certificate's public parts (PEM, chain, DER, PKCS#7) to a file or stdout."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from inventory import exporting
from inventory.models import Certificate


class Command(BaseCommand):
    help = "Export the public parts of a certificate version (never the private key)."

    def create_parser(self, prog_name, subcommand, **kwargs):
        # --version names a certificate version here, not Django's version.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("--certificate", required=True, help="The certificate's name.")
        parser.add_argument("--project", help="Project slug; needed when the name is not unique.")
        parser.add_argument(
            "--version", dest="sha256", help="SHA-256 of a version (default current)."
        )
        parser.add_argument("--format", required=True, choices=list(exporting.PUBLIC_FORMATS))
        parser.add_argument("--out", help="File to write; default: the bytes to stdout.")

    def handle(self, *args, **options):
        certificate = find_certificate(options["certificate"], options["project"])
        version = exporting.version_of(certificate, options["sha256"])
        if version is None:
            which = options["sha256"] or "current"
            raise CommandError(f"{certificate.name!r} has no version {which!r}.")
        exported = exporting.public_file(version, options["format"])
        if options["out"]:
            Path(options["out"]).write_bytes(exported.content)
            self.stderr.write(f"Wrote {options['out']} ({len(exported.content)} bytes)")
        else:
            # Binary formats must reach stdout unchanged: bypass the text wrapper.
            stream = getattr(self.stdout, "_out", self.stdout)
            buffer = getattr(stream, "buffer", None)
            if buffer is not None:
                buffer.write(exported.content)
                buffer.flush()
            else:
                stream.write(exported.content.decode("latin-1"))


def find_certificate(name: str, project: str | None) -> Certificate:
    """The one certificate called name (in project), or a CommandError saying why not."""
    found = Certificate.objects.filter(name=name).select_related("project")
    if project:
        found = found.filter(project__slug=project)
    matches = list(found[:20])
    if not matches:
        where = f" in project {project!r}" if project else ""
        raise CommandError(f"No certificate is called {name!r}{where}.")
    if len(matches) > 1:
        slugs = ", ".join(sorted(c.project.slug for c in matches))
        raise CommandError(f"{name!r} exists in several projects ({slugs}); pass --project.")
    return matches[0]
