"""Public downloads (web and `export_cert`): every format is read by openssl and verifies."""

import re

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from inventory.exporting import safe_stem
from tests.pki.factory import make_chain, make_leaf, openssl

ALPHA = "alpha"


def colon_hex(sha256: str) -> str:
    return ":".join(sha256[i : i + 2] for i in range(0, len(sha256), 2)).upper()


def download(client, cert, fmt, version=None):
    url = reverse("inventory:certificate-download", args=[cert.pk, fmt])
    return client.get(url, {"version": version} if version else {})


@pytest.fixture
def pems(tmp_path, issued_chain):
    (tmp_path / "root.pem").write_bytes(issued_chain.root.pem)
    return tmp_path


@pytest.fixture
def viewer(client_for):
    return client_for("viewer")


def test_certificate_pem_is_the_leaf(viewer, inventory_cert, issued_chain, pems):
    response = download(viewer, inventory_cert, "cert")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-pem-file"
    assert response["Content-Disposition"] == 'attachment; filename="www.example.test.crt.pem"'
    (pems / "leaf.pem").write_bytes(response.content)
    out = openssl("x509", "-in", "leaf.pem", "-noout", "-fingerprint", "-sha256", cwd=pems)
    assert out.strip() == f"sha256 Fingerprint={colon_hex(issued_chain.leaf.sha256)}"


def test_fullchain_verifies_against_the_root(viewer, inventory_cert, pems):
    response = download(viewer, inventory_cert, "fullchain")
    (pems / "fullchain.pem").write_bytes(response.content)
    assert response.content.count(b"BEGIN CERTIFICATE") == 2  # leaf + intermediate, no root
    out = openssl(
        "verify", "-CAfile", "root.pem", "-untrusted", "fullchain.pem", "fullchain.pem", cwd=pems
    )
    assert out.strip() == "fullchain.pem: OK"


def test_chain_holds_the_issuers_and_completes_the_leaf(viewer, inventory_cert, pems):
    (pems / "leaf.pem").write_bytes(download(viewer, inventory_cert, "cert").content)
    chain = download(viewer, inventory_cert, "chain").content
    (pems / "chain.pem").write_bytes(chain)
    subjects = openssl("crl2pkcs7", "-nocrl", "-certfile", "chain.pem", cwd=pems)
    printed = openssl("pkcs7", "-print_certs", "-noout", cwd=pems, stdin=subjects.encode())
    assert re.findall(r"subject=CN ?= ?(.+)", printed) == ["Test Intermediate CA", "Test Root CA"]
    out = openssl("verify", "-CAfile", "root.pem", "-untrusted", "chain.pem", "leaf.pem", cwd=pems)
    assert out.strip() == "leaf.pem: OK"


def test_der_is_the_leaf_in_binary(viewer, inventory_cert, issued_chain, pems):
    response = download(viewer, inventory_cert, "der")
    assert response["Content-Type"] == "application/pkix-cert"
    assert response.content == issued_chain.leaf.der
    (pems / "leaf.cer").write_bytes(response.content)
    out = openssl("x509", "-in", "leaf.cer", "-inform", "DER", "-noout", "-subject", cwd=pems)
    assert "www.example.test" in out


def test_p7b_holds_leaf_and_chain_and_verifies(viewer, inventory_cert, pems):
    response = download(viewer, inventory_cert, "p7b")
    assert response["Content-Type"] == "application/pkcs7-mime"
    assert response["Content-Disposition"].endswith('.p7b"')
    (pems / "bundle.p7b").write_bytes(response.content)
    printed = openssl("pkcs7", "-in", "bundle.p7b", "-inform", "DER", "-print_certs", cwd=pems)
    subjects = sorted(re.findall(r"subject=CN ?= ?(.+)", printed))
    assert subjects == ["Test Intermediate CA", "Test Root CA", "www.example.test"]
    (pems / "all.pem").write_text(printed)
    out = openssl("verify", "-CAfile", "root.pem", "-untrusted", "all.pem", "all.pem", cwd=pems)
    assert "OK" in out


def test_unknown_format_is_not_found(viewer, inventory_cert):
    assert download(viewer, inventory_cert, "pfx").status_code == 404


def test_an_older_version_is_chosen_by_its_sha256(viewer, import_pem, inventory_cert, issued_chain):
    renewed = make_leaf(issued_chain.intermediate, days=200)
    import_pem(renewed.pem)
    inventory_cert.refresh_from_db()
    assert inventory_cert.current_version.sha256 == renewed.sha256
    current = download(viewer, inventory_cert, "der").content
    older = download(viewer, inventory_cert, "der", version=issued_chain.leaf.sha256.upper())
    assert (current, older.content) == (renewed.der, issued_chain.leaf.der)
    assert download(viewer, inventory_cert, "der", version="0" * 64).status_code == 404


def test_a_version_of_another_certificate_is_not_found(viewer, inventory_cert, import_pem):
    other = make_leaf(None, "other.example.test")
    import_pem(other.pem)
    assert download(viewer, inventory_cert, "der", version=other.sha256).status_code == 404


def test_file_names_are_safe_ascii(viewer, import_pem):
    cert = import_pem(make_leaf(None, "x.example.test").pem, name="../../etc/pässwd *prod*")
    disposition = download(viewer, cert, "cert")["Content-Disposition"]
    assert disposition == 'attachment; filename="etc-passwd-wildcardprodwildcard.crt.pem"'
    assert safe_stem("..") == "certificate"
    assert safe_stem("*.example.com") == "wildcard.example.com"
    assert safe_stem('a\\b/c"d') == "a-b-c-d"


def test_downloads_are_not_cached(viewer, inventory_cert):
    assert "no-store" in download(viewer, inventory_cert, "cert")["Cache-Control"]


# --- export_cert ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_export_cert_writes_binary_to_stdout(capsysbinary, inventory_cert, issued_chain):
    call_command("export_cert", "--certificate", "www.example.test", "--format", "der")
    assert capsysbinary.readouterr().out == issued_chain.leaf.der


@pytest.mark.django_db
def test_export_cert_writes_a_file_that_verifies(tmp_path, inventory_cert, issued_chain, pems):
    out = pems / "full.pem"
    call_command(
        "export_cert",
        "--certificate",
        "www.example.test",
        "--project",
        ALPHA,
        "--version",
        issued_chain.leaf.sha256,
        "--format",
        "fullchain",
        "--out",
        str(out),
    )
    result = openssl(
        "verify", "-CAfile", "root.pem", "-untrusted", "full.pem", "full.pem", cwd=pems
    )
    assert result.strip() == "full.pem: OK"


@pytest.mark.django_db
def test_export_cert_refuses_an_ambiguous_name(inventory_cert, import_pem, other_project):
    import_pem(make_chain().leaf.pem, target_project=other_project, name="www.example.test")
    with pytest.raises(CommandError, match=r"several projects \(alpha, beta\); pass --project"):
        call_command("export_cert", "--certificate", "www.example.test", "--format", "cert")
    call_command(
        "export_cert", "--certificate", "www.example.test", "--project", "beta", "--format", "cert"
    )


@pytest.mark.django_db
def test_export_cert_names_what_it_cannot_find(inventory_cert):
    with pytest.raises(CommandError, match="No certificate is called 'nope'"):
        call_command("export_cert", "--certificate", "nope", "--format", "cert")
    with pytest.raises(CommandError, match="has no version 'abc'"):
        call_command(
            "export_cert",
            "--certificate",
            "www.example.test",
            "--version",
            "abc",
            "--format",
            "p7b",
        )
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("export_cert", "--certificate", "www.example.test", "--format", "pfx")


# --- The downloads block on the certificate page ----------------------------------------------


def test_the_certificate_page_offers_downloads_and_key_export_by_role(client_for, inventory_cert):
    detail = reverse("inventory:certificate-detail", args=[inventory_cert.pk])
    sha = inventory_cert.current_version.sha256
    key_link = reverse("inventory:key-export", args=[inventory_cert.pk]) + f"?version={sha}"
    viewer_page = client_for("viewer").get(detail).content.decode()
    fullchain = reverse("inventory:certificate-download", args=[inventory_cert.pk, "fullchain"])
    assert f"{fullchain}?version={sha}" in viewer_page
    assert key_link not in viewer_page
    assert key_link in client_for("keycustodian").get(detail).content.decode()
