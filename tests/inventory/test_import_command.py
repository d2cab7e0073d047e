"""`import_certs`: the JSON lines contract other tools rely on, and the human output."""

import json
import os
import re
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from certconsole.audit.models import AuditEvent
from inventory.models import Certificate, CertificateVersion
from inventory.pki.formats import pkcs12
from tests.pki.factory import make_leaf

ROOT = Path(__file__).resolve().parents[2]
FIELDS = {"file", "status", "error", "certificates", "keys"}
CERT_FIELDS = {"sha256", "subject", "sans", "not_after", "key_type", "has_private_key"}
UTC_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def run_import(*args) -> list[dict]:
    """Run the command with --json; one parsed object per output line."""
    out = StringIO()
    call_command("import_certs", *map(str, args), "--json", stdout=out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def assert_contract(line: dict) -> None:
    assert set(line) == FIELDS
    assert isinstance(line["file"], str)
    assert line["status"] in {"imported", "duplicate", "rejected"}
    assert line["error"] is None or isinstance(line["error"], str)
    assert isinstance(line["keys"], int)
    for cert in line["certificates"]:
        assert set(cert) == CERT_FIELDS
        assert re.fullmatch(r"[0-9a-f]{64}", cert["sha256"])
        assert isinstance(cert["subject"], str)
        assert all(isinstance(s, str) for s in cert["sans"])
        assert UTC_ISO.match(cert["not_after"])
        assert isinstance(cert["key_type"], str)
        assert isinstance(cert["has_private_key"], bool)


def test_json_line_describes_the_imported_leaf_exactly(project, issued_chain, tmp_path):
    c = issued_chain
    bundle = write(
        tmp_path / "site.pem", c.leaf.pem + c.intermediate.pem + c.root.pem + c.leaf.key_pem
    )
    [line] = run_import(bundle, "--project", "alpha")
    assert_contract(line)
    assert line["file"] == str(bundle)
    assert (line["status"], line["error"], line["keys"]) == ("imported", None, 1)
    [cert] = line["certificates"]
    assert cert["sha256"] == c.leaf.sha256
    assert cert["subject"] == "CN=www.example.test"
    assert cert["sans"] == ["www.example.test"]
    assert cert["not_after"] == c.leaf.cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert cert["key_type"] == "EC-P256"
    assert cert["has_private_key"] is True


@pytest.mark.parametrize("kind,name", [("rsa-2048", "RSA-2048"), ("ed25519", "Ed25519")])
def test_key_type_is_named_the_way_people_say_it(project, issued_chain, tmp_path, kind, name):
    leaf = make_leaf(issued_chain.intermediate, key_kind=kind)
    [line] = run_import(write(tmp_path / "leaf.pem", leaf.pem), "--project", "alpha")
    assert line["certificates"][0]["key_type"] == name


def test_second_run_reports_duplicates_and_writes_nothing(project, issued_chain, tmp_path):
    path = write(tmp_path / "leaf.pem", issued_chain.leaf.pem)
    run_import(path, "--project", "alpha")
    [line] = run_import(path, "--project", "alpha")
    assert_contract(line)
    assert (line["status"], line["error"]) == ("duplicate", None)
    assert line["certificates"][0]["sha256"] == issued_chain.leaf.sha256
    assert CertificateVersion.objects.count() == 1


def test_garbage_is_rejected_with_its_reason_and_the_run_goes_on(project, issued_chain, tmp_path):
    bad = write(tmp_path / "a-notes.txt", b"hello, not a certificate")
    truncated = write(tmp_path / "b-cut.pem", issued_chain.leaf.pem[:200])
    good = write(tmp_path / "c-leaf.pem", issued_chain.leaf.pem)
    lines = run_import(bad, truncated, good, tmp_path / "missing.pem", "--project", "alpha")
    for line in lines:
        assert_contract(line)
    assert [line["status"] for line in lines] == ["rejected", "rejected", "imported", "rejected"]
    assert "Not a certificate" in lines[0]["error"]
    assert lines[1]["error"]
    assert lines[0]["certificates"] == [] and lines[0]["keys"] == 0
    assert "No such file" in lines[3]["error"]


def test_directories_are_walked_recursively_sorted_without_hidden_files(
    project, issued_chain, tmp_path
):
    c = issued_chain
    write(tmp_path / "certs" / "b.pem", c.leaf.pem)
    write(tmp_path / "certs" / "a" / "chain.pem", c.intermediate.pem + c.root.pem)
    write(tmp_path / "certs" / ".secret.pem", b"ignored")
    write(tmp_path / "certs" / ".git" / "x.pem", b"ignored")
    lines = run_import(f"{tmp_path}/certs", "--project", "alpha")
    assert [line["file"] for line in lines] == [
        f"{tmp_path}/certs/a/chain.pem",
        f"{tmp_path}/certs/b.pem",
    ]
    pool = lines[0]["certificates"]
    assert [cert["has_private_key"] for cert in pool] == [False, False]
    # The pool from the first file completes the chain of the second.
    assert CertificateVersion.objects.get().chain_complete


def test_pkcs12_needs_its_password(project, issued_chain, tmp_path):
    c = issued_chain
    pfx = write(
        tmp_path / "site.pfx", pkcs12(c.leaf.key, c.leaf.cert, [c.intermediate.cert], b"s3cret")
    )
    [wrong] = run_import(pfx, "--project", "alpha", "--password", "nope")
    assert wrong["status"] == "rejected"
    assert "Wrong password" in wrong["error"]
    [line] = run_import(pfx, "--project", "alpha", "--password", "s3cret")
    assert (line["status"], line["keys"]) == ("imported", 1)
    assert line["certificates"][0]["has_private_key"] is True


def test_name_makes_a_new_leaf_the_next_version(project, issued_chain, tmp_path):
    first = write(tmp_path / "one.pem", issued_chain.leaf.pem)
    run_import(first, "--project", "alpha", "--name", "shop")
    other = make_leaf(issued_chain.intermediate, name="shop.example.test")
    run_import(write(tmp_path / "two.pem", other.pem), "--project", "alpha", "--name", "shop")
    certificate = Certificate.objects.get()
    assert certificate.name == "shop"
    assert certificate.versions.count() == 2
    assert certificate.primary_domain == "shop.example.test"


def test_labels_and_owner_go_on_the_created_certificate(project, issued_chain, tmp_path):
    path = write(tmp_path / "leaf.pem", issued_chain.leaf.pem)
    args = [
        "--label",
        "env=prod",
        "--label",
        "team=web",
        "cost/center=42",
        "--owner",
        "ops@example.test",
    ]
    run_import(path, "--project", "alpha", *args)
    certificate = Certificate.objects.get()
    assert certificate.label_env == "prod"
    assert certificate.label_owner == "ops@example.test"
    assert certificate.labels == {"team": "web", "cost/center": "42"}


@pytest.mark.parametrize("label", ["noequals", "=value", "bad key=1"])
def test_a_malformed_label_stops_the_command(project, issued_chain, tmp_path, label):
    path = write(tmp_path / "leaf.pem", issued_chain.leaf.pem)
    with pytest.raises(CommandError, match="not a label"):
        run_import(path, "--project", "alpha", "--label", label)
    assert Certificate.objects.count() == 0


def test_unknown_project_is_an_error(db, tmp_path):
    with pytest.raises(CommandError, match="No project"):
        run_import(write(tmp_path / "x.pem", b"x"), "--project", "nope")


def test_unmatched_keys_are_stored_only_when_asked(project, tmp_path):
    from inventory.models import PrivateKey
    from inventory.pki.keys import private_key_pem
    from tests.pki.factory import make_key

    path = write(tmp_path / "key.pem", private_key_pem(make_key()))
    [refused] = run_import(path, "--project", "alpha")
    assert refused["status"] == "rejected" and refused["keys"] == 1
    [stored] = run_import(path, "--project", "alpha", "--store-unmatched-keys")
    assert stored["status"] == "imported"
    assert PrivateKey.objects.get().unmatched


def test_imports_are_audited_as_the_system_from_the_command_line(project, issued_chain, tmp_path):
    run_import(
        write(tmp_path / "leaf.pem", issued_chain.leaf.pem + issued_chain.leaf.key_pem),
        "--project",
        "alpha",
    )
    events = AuditEvent.objects.filter(action__in=["certificate.import", "certificate.upload_key"])
    assert {e.action for e in events} == {"certificate.import", "certificate.upload_key"}
    assert all(e.source == "cli" and e.actor_id is None for e in events)


def test_without_json_one_readable_line_per_file(project, issued_chain, tmp_path):
    good = write(tmp_path / "a.pem", issued_chain.leaf.pem + issued_chain.leaf.key_pem)
    bad = write(tmp_path / "b.txt", b"nonsense")
    out = StringIO()
    call_command("import_certs", str(good), str(bad), "--project", "alpha", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines == [
        f"imported  {good}: www.example.test (EC-P256, key); 1 key",
        f"rejected  {bad}: " + lines[1].split(": ", 1)[1],
    ]
    assert "Not a certificate" in lines[1]


def test_real_command_line_exits_zero_and_prints_json_lines(issued_chain, tmp_path):
    """The contract as another tool sees it: a process, its stdout and its exit code."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}",
    }

    def manage(*args):
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
        )

    assert manage("migrate", "-v0").returncode == 0
    assert manage("project", "create", "cli").returncode == 0
    good = write(tmp_path / "in" / "leaf.pem", issued_chain.leaf.pem)
    write(tmp_path / "in" / "junk.bin", b"\x00\x01garbage")
    done = manage("import_certs", str(tmp_path / "in"), "--project", "cli", "--json")
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    for line in lines:
        assert_contract(line)
    assert [(line["file"], line["status"]) for line in lines] == [
        (str(tmp_path / "in" / "junk.bin"), "rejected"),
        (str(good), "imported"),
    ]
    missing = manage("import_certs", str(good), "--project", "nope", "--json")
    assert missing.returncode == 1
    assert "No project" in missing.stderr
