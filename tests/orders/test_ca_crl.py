"""CRLs: signed by the CA, readable by openssl, listing the revoked serials with reasons."""

import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from inventory.pki.keys import generate_private_key
from orders.ca import (
    CaError,
    CaSpec,
    IssueRequest,
    Profile,
    RevokedEntry,
    build_crl,
    create_intermediate,
    create_root,
    crl_der,
    crl_pem,
    issue,
)
from orders.ca.crl import reason_flag
from tests.pki.factory import openssl

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
PROFILE = Profile("web", allowed_domains=["*.example.test"])


@pytest.fixture(scope="module")
def ca():
    root = create_root(CaSpec("CN=CRL Test Root"))
    return create_intermediate(CaSpec("CN=CRL Test Issuing CA"), root)


def leaf(ca, name: str) -> x509.Certificate:
    key = generate_private_key("ec-p256")
    return issue(ca, IssueRequest(key.public_key(), dns=[name], days=30), PROFILE)


def build(ca, entries, number=7):
    return build_crl(
        ca, entries, this_update=NOW, next_update=NOW + timedelta(days=7), crl_number=number
    )


def test_openssl_reads_the_crl_with_its_serials_reasons_and_number(tmp_path: Path, ca):
    entries = [
        RevokedEntry(2**158 + 12345, NOW - timedelta(hours=1), "key_compromise"),
        RevokedEntry(0x0ABC, NOW - timedelta(hours=2), "superseded"),
        RevokedEntry(77, NOW - timedelta(hours=3), "cessation_of_operation"),
        RevokedEntry(78, NOW - timedelta(hours=4), "unspecified"),
    ]
    path = tmp_path / "ca.crl"
    path.write_bytes(crl_pem(build(ca, entries)))
    text = openssl("crl", "-inform", "PEM", "-in", str(path), "-noout", "-text")
    listed = {int(h, 16) for h in re.findall(r"Serial Number: ([0-9A-F]+)", text)}
    assert listed == {entry.serial for entry in entries}
    assert "Key Compromise" in text
    assert "Superseded" in text
    assert "Cessation Of Operation" in text
    assert re.search(r"X509v3 CRL Number:\s+7", text)
    assert "Issuer: CN = CRL Test Issuing CA" in text
    (tmp_path / "ca.pem").write_bytes(ca.pem)
    checked = subprocess.run(
        ["openssl", "crl", "-in", str(path), "-CAfile", str(tmp_path / "ca.pem"), "-noout"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0 and "verify OK" in checked.stdout + checked.stderr


def test_the_crl_is_signed_by_the_ca_and_names_its_key(ca):
    crl = build(ca, [])
    assert crl.is_signature_valid(ca.cert.public_key())
    assert crl.issuer == ca.cert.subject
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert crl.next_update_utc == NOW + timedelta(days=7)


def test_pem_and_der_are_the_same_crl(ca):
    crl = build(ca, [RevokedEntry(5, NOW, "superseded")])
    assert crl_pem(crl).startswith(b"-----BEGIN X509 CRL-----")
    assert x509.load_der_x509_crl(crl_der(crl)) == x509.load_pem_x509_crl(crl_pem(crl))


def test_an_unspecified_reason_is_left_out_of_the_entry(ca):
    crl = build(ca, [RevokedEntry(5, NOW, "unspecified"), RevokedEntry(6, NOW, "superseded")])
    unspecified = crl.get_revoked_certificate_by_serial_number(5)
    superseded = crl.get_revoked_certificate_by_serial_number(6)
    assert len(unspecified.extensions) == 0
    reason = superseded.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.superseded


def test_reason_names_are_read_in_the_usual_spellings():
    assert reason_flag("key_compromise") is x509.ReasonFlags.key_compromise
    assert reason_flag("Key compromise") is x509.ReasonFlags.key_compromise
    assert reason_flag("keyCompromise") is x509.ReasonFlags.key_compromise
    assert reason_flag("cessation-of-operation") is x509.ReasonFlags.cessation_of_operation


def test_an_unknown_reason_and_bad_dates_are_refused(ca):
    with pytest.raises(CaError, match="unknown revocation reason “lost it”; use one of"):
        build(ca, [RevokedEntry(1, NOW, "lost it")])
    with pytest.raises(CaError, match="unknown revocation reason “remove_from_crl”"):
        build(ca, [RevokedEntry(1, NOW, "remove_from_crl")])
    with pytest.raises(CaError, match="the next update of a CRL must come after this update"):
        build_crl(ca, [], this_update=NOW, next_update=NOW, crl_number=1)


def test_openssl_verify_with_the_crl_fails_only_for_the_revoked_certificate(tmp_path: Path, ca):
    revoked, kept = leaf(ca, "old.example.test"), leaf(ca, "new.example.test")
    now = datetime.now(UTC)
    crl = build_crl(
        ca,
        [RevokedEntry(revoked.serial_number, now - timedelta(minutes=1), "superseded")],
        this_update=now - timedelta(minutes=1),
        next_update=now + timedelta(days=1),
        crl_number=1,
    )
    files = {
        "root.pem": ca.chain[0].public_bytes(serialization.Encoding.PEM),
        "int.pem": ca.pem,
        "crl.pem": crl_pem(crl),
        "revoked.pem": revoked.public_bytes(serialization.Encoding.PEM),
        "kept.pem": kept.public_bytes(serialization.Encoding.PEM),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)

    def verify(name: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["openssl", "verify", "-crl_check", "-CAfile", "root.pem", "-untrusted", "int.pem",
             "-CRLfile", "crl.pem", name],
            cwd=tmp_path, capture_output=True, text=True, check=False,
        )  # fmt: skip

    assert verify("kept.pem").returncode == 0
    result = verify("revoked.pem")
    assert result.returncode != 0
    assert "certificate revoked" in result.stdout + result.stderr
