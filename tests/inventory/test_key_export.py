"""Private key export: only key roles, with a reason, a fresh password, an audit event first."""

import base64
import io
import json
import logging
import subprocess
import zipfile

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from certconsole.access.reauth import MAX_FAILURES, SESSION_KEY
from certconsole.audit.models import AuditEvent
from inventory import exporting
from inventory.exporting import ExportError
from inventory.models import CertificateVersion
from inventory.pki import formats
from inventory.pki.keys import private_key_pkcs8_der
from tests.conftest import PASSWORD
from tests.pki.factory import make_leaf, openssl

PASSPHRASE = "export-passphrase 42"


def export_url(cert, version=None):
    url = reverse("inventory:key-export", args=[cert.pk])
    return f"{url}?version={version}" if version else url


def post_export(
    client, cert, fmt="p12", passphrase=PASSPHRASE, reason="CHG-1234 move to new LB", **extra
):
    data = {
        "format": fmt,
        "passphrase": passphrase,
        "passphrase_confirm": passphrase,
        "reason": reason,
        **extra,
    }
    return client.post(export_url(cert), data)


def exports():
    return AuditEvent.objects.filter(action="certificate.export_key")


def make_stale(client, seconds=600):
    session = client.session
    session[SESSION_KEY] -= seconds
    session.save()


def public_key_of_cert(path, cwd):
    return openssl("x509", "-in", path, "-noout", "-pubkey", cwd=cwd)


def public_key_of_key(path, cwd, passin=None):
    args = ["pkey", "-in", path, "-pubout"]
    if passin:
        args += ["-passin", f"pass:{passin}"]
    return openssl(*args, cwd=cwd)


@pytest.fixture
def custodian(client_for):
    return client_for("keycustodian")


@pytest.fixture
def leaf_pem(tmp_path, issued_chain):
    (tmp_path / "leaf.pem").write_bytes(issued_chain.leaf.pem)
    (tmp_path / "root.pem").write_bytes(issued_chain.root.pem)
    return tmp_path


# --- Who may ----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "requester", "deployer", "auditor"])
def test_roles_without_the_right_get_403_and_the_denial_is_audited(
    client_for, inventory_cert, role
):
    response = post_export(client_for(role), inventory_cert)
    assert response.status_code == 403
    assert not exports().exists()
    denial = AuditEvent.objects.get(action="access.denied", actor_name=role)
    assert denial.detail == {"permission": "certificate.export_key"}
    assert denial.target_id == str(inventory_cert.pk)


def test_outsiders_do_not_learn_the_certificate_exists(client_for, inventory_cert):
    assert post_export(client_for("outsider"), inventory_cert).status_code == 404
    assert client_for("outsider").get(export_url(inventory_cert)).status_code == 404
    assert not exports().exists()


@pytest.mark.parametrize("role", ["keycustodian", "projectadmin", "superuser"])
def test_key_roles_and_superusers_may_export(client_for, inventory_cert, role):
    response = post_export(client_for(role), inventory_cert)
    assert response.status_code == 200
    assert exports().get().actor_name == ("root" if role == "superuser" else role)


# --- The form ---------------------------------------------------------------------------------


def test_get_shows_the_form_and_what_will_happen_without_key_material(
    custodian, inventory_cert, issued_chain
):
    response = custodian.get(export_url(inventory_cert))
    assert response.status_code == 200
    page = response.content.decode()
    assert "You are exporting the private key of" in page
    assert "recorded in the audit log" in page
    for field in ("format", "passphrase", "passphrase_confirm", "reason"):
        assert f'name="{field}"' in page
    assert 'name="password"' not in page  # signed in just now
    assert "PRIVATE KEY" not in page
    assert not any(line in page for line in _pem_lines(issued_chain.leaf.key_pem))
    assert "no-store" in response["Cache-Control"]
    assert not exports().exists()


def test_reason_is_required(custodian, inventory_cert):
    response = post_export(custodian, inventory_cert, reason="   ")
    assert response.status_code == 400
    assert "Give a reason" in response.content.decode()
    assert not exports().exists()


def test_passphrases_must_match(custodian, inventory_cert):
    response = post_export(custodian, inventory_cert, passphrase_confirm="something else")
    assert response.status_code == 400
    assert "The two passphrases differ" in response.content.decode()


@pytest.mark.parametrize(
    ("fmt", "passphrase", "message"),
    [
        ("p12", "", "must be protected: choose a passphrase"),
        ("iis", "", "must be protected: choose a passphrase"),
        ("tomcat", "", "must be protected: choose a passphrase"),
        ("key-encrypted", "", "must be protected: choose a passphrase"),
        ("haproxy", PASSPHRASE, "cannot be protected by a passphrase"),
        ("kubernetes", PASSPHRASE, "cannot be protected by a passphrase"),
        ("key", PASSPHRASE, "cannot be protected by a passphrase"),
        ("p12", "short", "at least 8 characters"),
    ],
)
def test_each_format_gets_the_passphrase_it_can_use(
    custodian, inventory_cert, fmt, passphrase, message
):
    response = post_export(custodian, inventory_cert, fmt=fmt, passphrase=passphrase)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not exports().exists()


def test_a_version_without_key_gets_a_clear_message(custodian, import_pem):
    cert = import_pem(make_leaf(None, "nokey.example.test").pem)
    page = custodian.get(export_url(cert))
    assert page.status_code == 200
    assert "no private key in CertConsole" in page.content.decode()
    assert 'name="passphrase"' not in page.content.decode()
    response = post_export(custodian, cert)
    assert response.status_code == 400
    assert not exports().exists()
    with pytest.raises(ExportError, match="no private key"):
        exporting.export_key(None, cert.current_version, "p12", reason="r", passphrase=PASSPHRASE)


def test_every_server_bundle_kind_is_offered():
    assert set(formats.SERVER_BUNDLE_KINDS) <= set(exporting.KEY_FORMATS)


# --- Fresh authentication ---------------------------------------------------------------------


def test_a_stale_session_must_enter_the_password_again(custodian, inventory_cert):
    make_stale(custodian)
    assert 'name="password"' in custodian.get(export_url(inventory_cert)).content.decode()
    response = post_export(custodian, inventory_cert)
    assert response.status_code == 400
    assert "This field is required" in response.content.decode()
    assert not exports().exists()


def test_a_wrong_password_is_refused_and_audited(custodian, inventory_cert):
    make_stale(custodian)
    response = post_export(custodian, inventory_cert, password="guess")
    assert response.status_code == 400
    assert "That is not your password" in response.content.decode()
    assert not exports().exists()
    denied = AuditEvent.objects.get(action="certificate.export_key_denied")
    assert denied.actor_name == "keycustodian"
    assert denied.detail["why"] == "wrong password"
    assert denied.reason == "CHG-1234 move to new LB"
    assert "guess" not in json.dumps(denied.detail)


def test_too_many_wrong_passwords_end_the_session(custodian, inventory_cert):
    make_stale(custodian)
    for _ in range(MAX_FAILURES - 1):
        assert post_export(custodian, inventory_cert, password="guess").status_code == 400
    response = post_export(custodian, inventory_cert, password="guess")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert custodian.get(export_url(inventory_cert)).status_code == 302
    assert AuditEvent.objects.filter(action="certificate.export_key_denied").count() == MAX_FAILURES
    assert AuditEvent.objects.filter(action="auth.logout", actor_name="keycustodian").exists()
    assert not exports().exists()


def test_the_right_password_exports_and_renews_the_session(custodian, inventory_cert):
    make_stale(custodian)
    response = post_export(custodian, inventory_cert, password=PASSWORD)
    assert response.status_code == 200
    assert exports().count() == 1
    # Now fresh again: the next export needs no password.
    assert post_export(custodian, inventory_cert).status_code == 200


def test_a_timestamp_in_the_future_does_not_count_as_fresh(custodian, inventory_cert):
    make_stale(custodian, seconds=-3600)
    assert 'name="password"' in custodian.get(export_url(inventory_cert)).content.decode()


# --- Success: the files -----------------------------------------------------------------------


def test_the_export_is_audited_with_format_reason_and_version(custodian, inventory_cert):
    response = post_export(custodian, inventory_cert, fmt="p12-legacy", reason="INC-77 restore")
    assert response.status_code == 200
    event = exports().get()
    assert event.reason == "INC-77 restore"
    assert event.detail == {
        "format": "p12-legacy",
        "sha256": inventory_cert.current_version.sha256,
        "encrypted": True,
    }
    assert event.actor_name == "keycustodian"
    assert event.target_id == str(inventory_cert.pk)
    assert response["Cache-Control"].count("no-store") >= 1
    assert response["Content-Disposition"] == 'attachment; filename="www.example.test.legacy.p12"'
    assert PASSPHRASE not in json.dumps(event.detail)


def test_a_failing_audit_means_no_file(monkeypatch, inventory_cert):
    def broken(*args, **kwargs):
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr(exporting, "record", broken)
    with pytest.raises(RuntimeError):
        exporting.export_key(None, inventory_cert.current_version, "key", reason="r")


@pytest.mark.parametrize("fmt", ["p12", "p12-legacy"])
def test_pkcs12_opens_with_openssl_and_the_key_matches(custodian, inventory_cert, leaf_pem, fmt):
    response = post_export(custodian, inventory_cert, fmt=fmt)
    assert response["Content-Type"] == "application/x-pkcs12"
    (leaf_pem / "f.p12").write_bytes(response.content)
    passin = f"pass:{PASSPHRASE}"
    key = openssl("pkcs12", "-in", "f.p12", "-passin", passin, "-nocerts", "-nodes", cwd=leaf_pem)
    (leaf_pem / "key.pem").write_text(key)
    certs = openssl("pkcs12", "-in", "f.p12", "-passin", passin, "-nokeys", cwd=leaf_pem)
    assert certs.count("BEGIN CERTIFICATE") == 3
    assert public_key_of_key("key.pem", leaf_pem) == public_key_of_cert("leaf.pem", leaf_pem)
    wrong = subprocess.run(
        ["openssl", "pkcs12", "-in", "f.p12", "-passin", "pass:wrong", "-noout"],
        cwd=leaf_pem,
        capture_output=True,
    )
    assert wrong.returncode != 0


def test_jks_lists_a_private_key_entry(custodian, inventory_cert, tmp_path):
    response = post_export(custodian, inventory_cert, fmt="jks")
    (tmp_path / "k.jks").write_bytes(response.content)
    listing = subprocess.run(
        ["keytool", "-list", "-keystore", "k.jks", "-storepass", PASSPHRASE],
        cwd=tmp_path,
        capture_output=True,
        check=True,
    ).stdout.decode()
    assert "PrivateKeyEntry" in listing
    assert "www.example.test" in listing


def test_encrypted_pem_needs_the_passphrase(custodian, inventory_cert, leaf_pem):
    response = post_export(custodian, inventory_cert, fmt="key-encrypted")
    assert b"BEGIN ENCRYPTED PRIVATE KEY" in response.content
    (leaf_pem / "key.pem").write_bytes(response.content)
    without = subprocess.run(
        ["openssl", "pkey", "-in", "key.pem", "-passin", "pass:", "-noout"],
        cwd=leaf_pem,
        capture_output=True,
    )
    assert without.returncode != 0
    with_it = public_key_of_key("key.pem", leaf_pem, passin=PASSPHRASE)
    assert with_it == public_key_of_cert("leaf.pem", leaf_pem)


def test_plain_pem_is_the_key(custodian, inventory_cert, issued_chain):
    response = post_export(custodian, inventory_cert, fmt="key", passphrase="")
    assert response.content == issued_chain.leaf.key_pem
    assert exports().get().detail["encrypted"] is False


@pytest.mark.parametrize(
    ("fmt", "passphrase", "members"),
    [
        ("nginx", "", ["fullchain.pem", "privkey.pem", "README.txt"]),
        ("nginx", PASSPHRASE, ["fullchain.pem", "privkey.pem", "README.txt"]),
        ("apache", "", ["cert.pem", "chain.pem", "privkey.pem", "README.txt"]),
        ("iis", PASSPHRASE, ["certificate.pfx", "certificate-legacy.pfx", "README.txt"]),
        ("tomcat", PASSPHRASE, ["keystore.p12", "keystore.jks", "server.xml.txt", "README.txt"]),
        ("haproxy", "", ["www.example.test.pem", "README.txt"]),
        ("kubernetes", "", ["secret.yaml"]),
    ],
)
def test_server_bundles_hold_their_files(
    custodian, inventory_cert, leaf_pem, fmt, passphrase, members
):
    response = post_export(custodian, inventory_cert, fmt=fmt, passphrase=passphrase)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"] == f'attachment; filename="www.example.test.{fmt}.zip"'
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.namelist() == members
    if fmt == "nginx":
        (leaf_pem / "fullchain.pem").write_bytes(archive.read("fullchain.pem"))
        (leaf_pem / "privkey.pem").write_bytes(archive.read("privkey.pem"))
        verified = openssl(
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "fullchain.pem",
            "fullchain.pem",
            cwd=leaf_pem,
        )
        assert verified.strip() == "fullchain.pem: OK"
        key = public_key_of_key("privkey.pem", leaf_pem, passin=passphrase or None)
        assert key == public_key_of_cert("leaf.pem", leaf_pem)
        encrypted = b"ENCRYPTED PRIVATE KEY" in archive.read("privkey.pem")
        assert encrypted == bool(passphrase)
    assert exports().get().detail["format"] == fmt


# --- The key is never stored, logged or shown in clear ----------------------------------------


def _pem_lines(pem: bytes) -> list[str]:
    return [line for line in pem.decode().splitlines() if line and not line.startswith("-----")]


def test_no_dump_of_the_database_holds_the_key(custodian, inventory_cert, issued_chain, caplog):
    caplog.set_level(logging.DEBUG)
    exported = post_export(custodian, inventory_cert, fmt="key", passphrase="")
    make_stale(custodian)
    post_export(custodian, inventory_cert, password="wrong")

    der = private_key_pkcs8_der(issued_chain.leaf.key)
    needles = [
        *_pem_lines(issued_chain.leaf.key_pem),
        base64.b64encode(der).decode(),
        der.hex(),
    ]
    assert needles[0] in exported.content.decode()  # the needles do find the key in clear
    out = io.StringIO()
    # django_rq has an unmanaged model with no table.
    call_command("dumpdata", "--format", "json", "--exclude", "django_rq", stdout=out)
    dump = out.getvalue()
    assert "encrypted_pkcs8" in dump  # the key row is in the dump, encrypted
    assert not [n for n in needles if n in dump]

    seen = 0
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            columns = [
                c.name for c in connection.introspection.get_table_description(cursor, table)
            ]
            quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
            cursor.execute(f"SELECT {quoted} FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                for value in row:
                    seen += 1
                    if isinstance(value, bytes | memoryview):
                        assert der not in bytes(value), table
                    elif isinstance(value, str):
                        assert not [n for n in needles if n in value], table
    assert seen > 100

    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert not [n for n in needles if n in logged]


def test_the_stored_key_is_a_fernet_token(inventory_cert, issued_chain):
    stored = CertificateVersion.objects.get(sha256=issued_chain.leaf.sha256).private_key
    assert stored.encrypted_pkcs8.startswith("gAAAAA")
    assert stored.unseal().private_numbers() == issued_chain.leaf.key.private_numbers()
