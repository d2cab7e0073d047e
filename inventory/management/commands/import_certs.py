"""Import certificates and keys from files and directories into a project.

With --json, one JSON object per input file per line on stdout (other tools
read it): {"file", "status": "imported"|"duplicate"|"rejected", "error",
"certificates": [{"sha256", "subject", "sans", "not_after", "key_type",
"has_private_key"}], "keys"}. A rejected file is not a failure: the exit code is
0 unless a file crashed the import.
"""

import json
import os
import traceback
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from certconsole.access.models import Project
from certconsole.audit.context import cli_context
from inventory.forms_upload import parse_labels
from inventory.importing import FileResult, import_file, max_file_bytes


class Command(BaseCommand):
    help = "Import certificates and private keys from files or directories (recursive)."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", metavar="PATH", help="Files or directories.")
        parser.add_argument("--project", required=True, metavar="SLUG")
        parser.add_argument("--password", default=None, metavar="PW", help="PKCS#12/key password.")
        parser.add_argument(
            "--name", default=None, help="Certificate name; an existing one gets a new version."
        )
        parser.add_argument("--owner", default="", metavar="EMAIL")
        parser.add_argument(
            "--label",
            dest="labels",
            action="extend",
            nargs="+",
            default=[],
            metavar="KEY=VALUE",
            help="Labels for created certificates (repeat, or list several after the paths).",
        )
        parser.add_argument(
            "--store-unmatched-keys",
            action="store_true",
            help="Store private keys that match no certificate (flagged as unmatched).",
        )
        parser.add_argument("--json", action="store_true", help="One JSON object per file.")

    def handle(self, *args, **options):
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"No project with the slug {options['project']!r}.")
        try:
            labels = parse_labels(options["labels"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        password = options["password"].encode() if options["password"] else None
        import_options = {
            "name": options["name"] or None,
            "owner": options["owner"],
            "labels": labels,
            "store_unmatched_keys": options["store_unmatched_keys"],
        }
        crashed = 0
        with cli_context():
            for filename in input_files(options["paths"]):
                result = self._import_one(project, filename, password, import_options)
                crashed += result is None
                if result is None:
                    result = FileResult(
                        filename, "rejected", "The import crashed (see stderr).", [], 0
                    )
                self.stdout.write(
                    json.dumps(result.as_json()) if options["json"] else _line(result)
                )
        if crashed:
            raise CommandError(f"{crashed} file(s) crashed the import.", returncode=1)

    def _import_one(self, project, filename: str, password, options) -> FileResult | None:
        """Import one file; None (with the traceback on stderr) if the import crashed."""
        try:
            with open(filename, "rb") as handle:
                data = handle.read(max_file_bytes() + 1)  # one byte more: the limit says no
        except OSError as exc:
            return FileResult(filename, "rejected", f"Cannot read the file: {exc.strerror}.", [], 0)
        try:
            return import_file(None, project, filename, data, password, **options)
        except Exception:
            self.stderr.write(f"{filename}:\n{traceback.format_exc()}")
            return None


def input_files(paths: list[str]) -> list[str]:
    """The files to import: each file as given, directories walked recursively.

    Files of a directory come sorted by path; hidden files and directories are skipped.
    """
    found: list[str] = []
    for given in paths:
        if not Path(given).is_dir():
            found.append(given)
            continue
        walked = []
        for root, dirs, files in os.walk(given):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            walked += [os.path.join(root, f) for f in files if not f.startswith(".")]
        found += sorted(walked)
    return found


def _line(result: FileResult) -> str:
    """One human-readable line: status, file, and what was found or why it was refused."""
    if result.status == "rejected":
        return f"rejected  {result.file}: {result.error}"
    names = ", ".join(
        f"{c['sans'][0] if c['sans'] else c['subject']} ({c['key_type']}"
        f"{', key' if c['has_private_key'] else ''})"
        for c in result.certificates
    )
    keys = f"; {result.keys} key{'s' if result.keys != 1 else ''}" if result.keys else ""
    return f"{result.status:<9} {result.file}: {names or 'no certificate'}{keys}"
