"""Bulk import: certificates per second through the console's import, next to raw parsing.

n leaf PEM files (one EC P-256 key shared by all leaves, so generating them is
fast; distinct names and serials) issued by one intermediate under one root,
whose certificates go to the issuer pool first. Baseline: `cryptography` loading
and fingerprinting the same files. Then the console's own path (plan + apply per
file, which is `import_file`, what `import_certs` runs) in this process, and one
real `manage.py import_certs DIR --json` process for the same files.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from django.core.management import call_command

DEFAULT_N = 1000
ROOT = Path(__file__).resolve().parent.parent


def run(n: int) -> dict:
    call_command("migrate", verbosity=0)
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        directory = Path(tmp)
        start = time.perf_counter()
        ca_pem = _generate(n, directory / "leaves")
        generate_seconds = time.perf_counter() - start
        raw_seconds = _raw_parse(directory / "leaves")
        console = _console_import(directory / "leaves", ca_pem)
        cli = _command_line_import(directory / "leaves", ca_pem)
    return {
        "n": n,
        "generate_s": round(generate_seconds, 2),
        "raw_parse_per_s": round(n / raw_seconds, 1),
        "console_import_per_s": round(n / console["seconds"], 1),
        "console_plan_s": round(console["plan_seconds"], 2),
        "console_apply_s": round(console["apply_seconds"], 2),
        "console_statuses": console["statuses"],
        "cli_import_per_s": round(n / cli["seconds"], 1),
        "cli_wall_s": round(cli["seconds"], 2),
        "cli_statuses": cli["statuses"],
        "cli_exit_code": cli["exit_code"],
        "ratio_console_to_raw": round(raw_seconds / console["seconds"], 4),
        "ratio_cli_to_raw": round(raw_seconds / cli["seconds"], 4),
        "target_ratio": 0.25,
    }


def _generate(n: int, directory: Path) -> bytes:
    """Write n leaf PEM files; return the intermediate + root PEM for the pool."""
    from tests.pki.factory import make_ca, make_key, make_leaf

    directory.mkdir()
    root = make_ca("Bench Root CA")
    intermediate = make_ca("Bench Intermediate CA", issuer=root)
    key = make_key("ec-p256")
    for i in range(n):
        leaf = make_leaf(intermediate, f"host{i:06d}.bench.test", key=key)
        (directory / f"host{i:06d}.pem").write_bytes(leaf.pem)
    return intermediate.pem + root.pem


def _raw_parse(directory: Path) -> float:
    """Seconds for cryptography alone to load and fingerprint every file."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    files = sorted(directory.iterdir())
    start = time.perf_counter()
    for path in files:
        x509.load_pem_x509_certificate(path.read_bytes()).fingerprint(hashes.SHA256())
    return time.perf_counter() - start


def _fresh_project(label: str, ca_pem: bytes):
    """A new project with the CAs already in the pool (the pool is shared by all projects)."""
    from certconsole.access.models import Project
    from inventory.importing import import_file

    slug = f"bench-{label}-{uuid.uuid4().hex[:8]}"
    project = Project.objects.create(slug=slug, name=slug)
    import_file(None, project, "ca.pem", ca_pem)
    return project


def _console_import(directory: Path, ca_pem: bytes) -> dict:
    """import_file's two halves over every file, timed (in this process, as the system)."""
    from certconsole.audit.context import cli_context
    from inventory.importing import apply_plan, plan_file

    project = _fresh_project("inproc", ca_pem)
    statuses: dict[str, int] = {}
    plan_seconds = apply_seconds = 0.0
    with cli_context():
        for path in sorted(directory.iterdir()):
            t0 = time.perf_counter()
            plan = plan_file(None, project, str(path), path.read_bytes())
            t1 = time.perf_counter()
            result = apply_plan(None, project, plan)
            apply_seconds += time.perf_counter() - t1
            plan_seconds += t1 - t0
            statuses[result.status] = statuses.get(result.status, 0) + 1
    return {
        "seconds": plan_seconds + apply_seconds,
        "plan_seconds": plan_seconds,
        "apply_seconds": apply_seconds,
        "statuses": statuses,
    }


def _command_line_import(directory: Path, ca_pem: bytes) -> dict:
    """One real `manage.py import_certs DIR --project P --json` process (startup included)."""
    project = _fresh_project("cli", ca_pem)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings"}
    command = [sys.executable, "manage.py", "import_certs", str(directory)]
    start = time.perf_counter()
    done = subprocess.run(
        [*command, "--project", project.slug, "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    statuses: dict[str, int] = {}
    for line in done.stdout.splitlines():
        status = json.loads(line)["status"]
        statuses[status] = statuses.get(status, 0) + 1
    return {"seconds": seconds, "statuses": statuses, "exit_code": done.returncode}
