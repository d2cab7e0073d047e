import random
from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtensionOID, NameOID

from inventory.pki import formats
from inventory.pki.chains import build_chain
from inventory.pki.errors import PkiError
from inventory.pki.lint import lint
from inventory.pki.parse import San, describe, parse_bundle
from tests.pki.factory import make_ca, make_leaf, openssl


def openssl_fields(tmp_path, pem: bytes) -> dict[str, str]:
    """Ask openssl for the fingerprints and serial of a certificate."""
    (tmp_path / "c.pem").write_bytes(pem)
    fields = {}
    for flag in ("-sha256", "-sha1"):
        out = openssl("x509", "-in", "c.pem", "-noout", "-fingerprint", flag, cwd=tmp_path)
        fields[flag[1:]] = out.split("=", 1)[1].strip().replace(":", "").lower()
    out = openssl("x509", "-in", "c.pem", "-noout", "-serial", cwd=tmp_path)
    fields["serial"] = out.split("=", 1)[1].strip().lower()
    return fields


def test_rsa_leaf_facts_agree_with_openssl(tmp_path, rsa_chain):
    info = describe(rsa_chain.leaf.cert)
    expected = openssl_fields(tmp_path, rsa_chain.leaf.pem)
    assert (info.sha256, info.sha1, info.serial) == (
        expected["sha256"],
        expected["sha1"],
        expected["serial"],
    )
    assert info.subject == "CN=www.example.test"
    assert info.issuer == "CN=Test Intermediate CA"
    assert info.common_name == "www.example.test"
    assert info.key_type == "RSA-2048"
    assert info.key_size == 2048
    assert info.signature_algorithm == "sha256WithRSAEncryption"
    assert info.is_ca is False
    assert info.self_signed is False
    assert info.aki == describe(rsa_chain.intermediate.cert).ski
    assert info.ski is not None
    assert info.problems == []
    assert info.not_before.tzinfo == UTC
    assert info.not_after == rsa_chain.leaf.cert.not_valid_after_utc


def test_root_is_a_self_signed_ca(ec_chain):
    info = describe(ec_chain.root.cert)
    assert (info.is_ca, info.self_signed) == (True, True)
    assert info.signature_algorithm == "ecdsa-with-SHA256"
    assert info.key_type == "EC-P256"


@pytest.mark.parametrize(
    ("kind", "key_type", "signature"),
    [
        ("ed25519", "Ed25519", "ed25519"),
        ("ed448", "Ed448", "ed448"),
        ("ec-p384", "EC-P384", "ecdsa-with-SHA256"),
        ("ec-p521", "EC-P521", "ecdsa-with-SHA256"),
    ],
)
def test_key_and_signature_names(kind, key_type, signature):
    ca = make_ca(key_kind=kind)
    info = describe(make_leaf(ca, key_kind=kind).cert)
    assert info.key_type == key_type
    assert info.signature_algorithm == signature


def test_sans_of_every_kind_in_certificate_order():
    sans = ["www.example.test", "203.0.113.7", "2001:db8::1", "ops@example.test", "https://e.test/"]
    info = describe(make_leaf(None, sans=sans).cert)
    assert info.sans == [
        San("dns", "www.example.test"),
        San("ip", "203.0.113.7"),
        San("ip", "2001:db8::1"),
        San("email", "ops@example.test"),
        San("uri", "https://e.test/"),
    ]
    assert info.san_strings == sans


def test_subject_without_common_name():
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Ltd")])
    info = describe(make_leaf(None, subject=subject).cert)
    assert info.common_name is None
    assert info.subject == "O=Example Ltd"


# --- Hostile input -------------------------------------------------------------------------


def test_html_in_the_subject_is_returned_verbatim_for_the_template_to_escape():
    name = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    leaf = make_leaf(None, name, sans=["www.example.test"])
    info = describe(parse_bundle(leaf.pem).certificates[0])
    assert info.common_name == name
    assert info.problems == []


def test_right_to_left_override_is_flagged():
    name = "www.\u202etset.elpmaxe"
    info = describe(make_leaf(make_ca(), name, sans=["www.example.test"]).cert)
    assert info.common_name == name
    assert info.problems == ["The subject contains invisible or bidirectional control characters."]


@pytest.mark.filterwarnings("ignore:Attribute's length must be")
def test_ten_kilobyte_common_name():
    huge = "a" * 10_000
    attribute = x509.NameAttribute(NameOID.COMMON_NAME, huge, _validate=False)
    leaf = make_leaf(None, subject=x509.Name([attribute]), sans=["www.example.test"])
    info = describe(parse_bundle(leaf.pem).certificates[0])
    assert info.common_name == huge
    assert info.subject == "CN=" + huge


def test_six_hundred_sans():
    sans = [f"host{i}.example.test" for i in range(600)]
    leaf = make_leaf(None, sans=sans)
    info = describe(parse_bundle(leaf.pem).certificates[0])
    assert len(info.sans) == 600
    assert info.san_strings[599] == "host599.example.test"


def test_malformed_extension_is_reported_not_raised():
    broken = x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x01\x02garbage")
    leaf = make_leaf(None, sans=[], extensions=[broken])
    cert = parse_bundle(leaf.pem).certificates[0]
    info = describe(cert)
    assert info.sans == []
    assert info.is_ca is False
    assert info.problems == ["The certificate's extensions are malformed and were not read."]
    assert info.sha256 == cert.fingerprint(hashes.SHA256()).hex()


def test_duplicate_extension_is_reported_not_raised(ec_chain):
    san_value = x509.SubjectAlternativeName([x509.DNSName("www.example.test")]).public_bytes()
    placeholder = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4"), san_value)
    leaf = make_leaf(ec_chain.intermediate, extensions=[placeholder])
    # Rename the placeholder's OID to subjectAltName: same length, so the DER stays well formed.
    der = leaf.der.replace(b"\x06\x03\x2a\x03\x04", b"\x06\x03\x55\x1d\x11", 1)
    cert = parse_bundle(der).certificates[0]
    info = describe(cert)
    assert info.problems == [
        "The certificate repeats the subjectAltName extension; its extensions were not read."
    ]
    chain = build_chain(cert, ec_chain.certs, [])
    findings = lint(cert, chain, now=datetime.now(UTC))
    assert [f.code for f in findings] == ["chain_incomplete"]  # the edited leaf's signature broke


@pytest.mark.filterwarnings("ignore:Parsed a serial number which wasn't positive")
def test_mutated_inputs_only_ever_raise_pki_error(ec_chain):
    seeds = [
        ec_chain.leaf.der,
        ec_chain.leaf.pem + ec_chain.intermediate.pem + ec_chain.leaf.key_pem,
        formats.pkcs12(ec_chain.leaf.key, ec_chain.leaf.cert, [ec_chain.root.cert], b"pw"),
        formats.pkcs7_der(ec_chain.certs),
    ]
    rng = random.Random(20260315)
    parsed = 0
    for seed in seeds:
        for _ in range(250):
            data = bytearray(seed)
            if rng.random() < 0.5:
                for _ in range(rng.randint(1, 3)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
            else:
                del data[rng.randrange(len(data)) :]
            try:
                bundle = parse_bundle(bytes(data), b"pw")
            except PkiError:
                continue
            parsed += 1
            for cert in bundle.certificates:
                describe(cert)
                lint(cert, build_chain(cert, bundle.certificates, []), now=datetime.now(UTC))
    assert parsed > 50  # some mutations land in signatures and still parse
