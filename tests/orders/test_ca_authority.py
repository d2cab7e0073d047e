"""The private CA core: roots, intermediates, issuing, name constraints, CSRs and the
external-root flow, checked with the real openssl command line tool."""

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from inventory.pki.keys import generate_private_key, key_type, private_key_pem
from inventory.pki.parse import describe
from orders.ca import (
    CaError,
    CaMaterial,
    CaSpec,
    IssueRequest,
    Profile,
    accept_signed_intermediate,
    build_csr,
    create_intermediate,
    create_root,
    intermediate_csr,
    issue,
    read_csr,
)
from tests.pki.factory import openssl

ANYWHERE = Profile("anywhere", usage="both", allowed_domains=["*"], san_types={"dns", "ip"})


@pytest.fixture(scope="module")
def root() -> CaMaterial:
    return create_root(CaSpec("CN=Acme Internal Root,O=Acme", key_kind="ec-p384"))


@pytest.fixture(scope="module")
def intermediate(root) -> CaMaterial:
    return create_intermediate(CaSpec("CN=Acme Issuing CA,O=Acme", days=1825), root)


@pytest.fixture(scope="module")
def constrained(root) -> CaMaterial:
    spec = CaSpec(
        "CN=Acme Internal Services CA,O=Acme",
        permitted_dns=["internal.example"],
        excluded_dns=["secret.internal.example"],
    )
    return create_intermediate(spec, root)


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def write(directory: Path, name: str, data: bytes) -> str:
    path = directory / name
    path.write_bytes(data)
    return str(path)


def request_for(*dns: str, days: int = 30, **fields) -> IssueRequest:
    key = generate_private_key("ec-p256")
    return IssueRequest(public_key=key.public_key(), dns=list(dns), days=days, **fields)


def verify(tmp_path: Path, cert: x509.Certificate, ca: CaMaterial, *options: str):
    """Run `openssl verify -CAfile root [-untrusted intermediates] cert`; return the result."""
    args = ["openssl", "verify", *options, "-CAfile", write(tmp_path, "root.pem", pem(ca.root))]
    above_root = [ca.cert, *ca.chain][:-1]
    if above_root:
        bundle = b"".join(pem(c) for c in above_root)
        args += ["-untrusted", write(tmp_path, "untrusted.pem", bundle)]
    args.append(write(tmp_path, "leaf.pem", pem(cert)))
    return subprocess.run(args, capture_output=True, text=True, check=False)


def sign_raw(ca: CaMaterial, *dns: str, common_name: str | None = None) -> x509.Certificate:
    """Test-only: sign with the CA's key directly, bypassing the console's own checks."""
    key = generate_private_key("ec-p256")
    now = datetime.now(UTC)
    subject = [x509.NameAttribute(NameOID.COMMON_NAME, common_name or dns[0])]
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    if dns:
        names = [x509.DNSName(name) for name in dns]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca.key, hashes.SHA256())


# --- Creating CAs ------------------------------------------------------------------------------


def test_root_is_a_self_signed_ca_with_key_usage_and_key_identifiers(root):
    cert = root.cert
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    assert constraints.critical and constraints.value.ca
    assert constraints.value.path_length is None
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert aki.key_identifier == ski.digest
    info = describe(cert)
    assert info.self_signed and info.is_ca
    assert info.subject == "CN=Acme Internal Root,O=Acme"
    assert info.key_type == "EC-P384"
    assert isinstance(cert.signature_hash_algorithm, hashes.SHA384)
    assert root.chain == []
    text = openssl("x509", "-noout", "-text", stdin=pem(cert))
    assert "Certificate Sign, CRL Sign" in text


@pytest.mark.parametrize(
    ("kind", "named"),
    [("ec-p256", "EC-P256"), ("ec-p384", "EC-P384"), ("rsa-3072", "RSA-3072")],
)
def test_each_ca_key_type_makes_a_root_that_openssl_accepts(tmp_path, kind, named):
    ca = create_root(CaSpec(f"CN={kind} root", key_kind=kind, days=10))
    assert key_type(ca.key) == named
    path = write(tmp_path, "root.pem", ca.pem)
    assert openssl("verify", "-CAfile", path, path).strip().endswith("OK")


def test_a_bad_spec_is_refused_with_every_reason():
    spec = CaSpec("garbage", key_kind="rsa-1024", days=0, path_length=-1, permitted_dns=["*.x"])
    with pytest.raises(CaError) as refused:
        create_root(spec)
    reasons = refused.value.reasons
    assert reasons[0].startswith("the subject “garbage” is not a distinguished name")
    assert "key type must be one of ec-p256, ec-p384, rsa-3072, rsa-4096, not rsa-1024" in reasons
    assert "the validity must be at least 1 day" in reasons
    assert "the path length cannot be negative" in reasons
    assert any(r.startswith("permitted DNS subtree “*.x”: write a domain suffix") for r in reasons)
    assert str(refused.value).startswith("The CA cannot be created: ")


def test_name_constraints_are_a_critical_extension(constrained):
    extension = constrained.cert.extensions.get_extension_for_class(x509.NameConstraints)
    assert extension.critical
    assert extension.value.permitted_subtrees == [x509.DNSName("internal.example")]
    assert extension.value.excluded_subtrees == [x509.DNSName("secret.internal.example")]
    text = openssl("x509", "-noout", "-text", stdin=constrained.pem)
    assert "X509v3 Name Constraints: critical" in text
    assert "DNS:internal.example" in text


def test_intermediate_is_signed_by_its_parent_and_knows_its_chain(root, intermediate):
    assert intermediate.chain == [root.cert]
    assert intermediate.cert.issuer == root.cert.subject
    intermediate.cert.verify_directly_issued_by(root.cert)
    aki = intermediate.cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    ski = root.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert aki.value.key_identifier == ski.value.digest
    assert intermediate.root is root.cert


def test_an_intermediate_never_outlives_its_parent():
    parent = create_root(CaSpec("CN=Short Root", days=30))
    child = create_intermediate(CaSpec("CN=Long Child", days=3650), parent)
    assert child.cert.not_valid_after_utc == parent.cert.not_valid_after_utc


def test_path_length_zero_parent_cannot_sign_another_ca(root):
    leaf_only = create_intermediate(CaSpec("CN=Leaf-only CA", path_length=0), root)
    with pytest.raises(CaError, match="has path length 0: it cannot sign another CA"):
        create_intermediate(CaSpec("CN=Grandchild"), leaf_only)


def test_child_path_length_is_bounded_by_the_parent(root):
    parent = create_intermediate(CaSpec("CN=Two Levels", path_length=1), root)
    child = create_intermediate(CaSpec("CN=Derived"), parent)
    assert child.cert.extensions.get_extension_for_class(x509.BasicConstraints).value == (
        x509.BasicConstraints(ca=True, path_length=0)
    )
    with pytest.raises(CaError, match="the path length can be at most 0"):
        create_intermediate(CaSpec("CN=Too Deep", path_length=3), parent)


# --- Issuing -----------------------------------------------------------------------------------


def test_server_certificate_from_the_root_verifies_with_openssl(tmp_path, root):
    cert = issue(root, request_for("app.example.test"), ANYWHERE)
    result = verify(tmp_path, cert, root, "-purpose", "sslserver")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(": OK")


def test_server_certificate_from_an_intermediate_verifies_with_openssl(tmp_path, intermediate):
    cert = issue(intermediate, request_for("app.example.test", "api.example.test"), ANYWHERE)
    result = verify(
        tmp_path,
        cert,
        intermediate,
        "-purpose",
        "sslserver",
        "-verify_hostname",
        "api.example.test",
    )
    assert result.returncode == 0, result.stderr
    assert cert.issuer == intermediate.cert.subject


def test_issued_certificate_carries_the_expected_extensions(intermediate):
    request = request_for("App.Example.Test.", days=30)
    cert = issue(intermediate, request, ANYWHERE, crl_url="http://127.0.0.1:8000/ca/1/crl")
    ext = cert.extensions
    assert ext.get_extension_for_class(x509.BasicConstraints).critical
    assert not ext.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = ext.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_encipherment
    sans = ext.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["app.example.test"]
    assert cert.subject.rfc4514_string() == "CN=app.example.test"
    points = ext.get_extension_for_class(x509.CRLDistributionPoints).value
    assert points[0].full_name == [x509.UniformResourceIdentifier("http://127.0.0.1:8000/ca/1/crl")]
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = intermediate.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert ext.get_extension_for_class(x509.SubjectKeyIdentifier).value == (
        x509.SubjectKeyIdentifier.from_public_key(request.public_key)
    )
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=30)


def test_serials_are_random_159_bit_numbers_unless_given(intermediate):
    serials = {issue(intermediate, request_for("s.example.test"), ANYWHERE).serial_number}
    serials |= {issue(intermediate, request_for("s.example.test"), ANYWHERE).serial_number}
    assert len(serials) == 2
    assert all(0 < serial < 2**159 for serial in serials)
    given = issue(intermediate, request_for("s.example.test"), ANYWHERE, serial=4242)
    assert given.serial_number == 4242


def test_a_certificate_never_outlives_its_ca():
    ca = create_root(CaSpec("CN=Ten Day Root", days=10))
    cert = issue(ca, request_for("short.example.test", days=90), ANYWHERE)
    assert cert.not_valid_after_utc == ca.cert.not_valid_after_utc


def test_an_expired_ca_refuses_to_sign(root):
    later = root.cert.not_valid_after_utc + timedelta(days=1)
    with pytest.raises(
        CaError, match=r"the CA CN=Acme Internal Root,O=Acme cannot sign: it expired"
    ):
        issue(root, request_for("late.example.test"), ANYWHERE, now=later)


def test_a_ca_with_the_wrong_key_or_not_yet_valid_refuses_to_sign(root, intermediate):
    mixed_up = CaMaterial(intermediate.cert, root.key, intermediate.chain)
    with pytest.raises(CaError, match="cannot sign: its key does not match its certificate"):
        issue(mixed_up, request_for("k.example.test"), ANYWHERE)
    earlier = root.cert.not_valid_before_utc - timedelta(days=1)
    with pytest.raises(CaError, match="cannot sign: it is valid only from"):
        issue(root, request_for("k.example.test"), ANYWHERE, now=earlier)


def test_certificates_within_the_name_constraints_verify(tmp_path, constrained):
    cert = issue(constrained, request_for("api.internal.example", "internal.example"), ANYWHERE)
    result = verify(tmp_path, cert, constrained)
    assert result.returncode == 0, result.stderr


def test_a_name_outside_the_constraints_fails_openssl_and_the_console_refuses(
    tmp_path, constrained
):
    forged = sign_raw(constrained, "api.other.com")
    result = verify(tmp_path, forged, constrained)
    assert result.returncode != 0
    assert "permitted subtree violation" in result.stdout + result.stderr
    with pytest.raises(CaError) as refused:
        issue(constrained, request_for("api.other.com"), ANYWHERE)
    assert refused.value.reasons == [
        "api.other.com is outside the CA's name constraints (permitted: internal.example)"
    ]


def test_an_excluded_name_fails_openssl_and_the_console_refuses(tmp_path, constrained):
    forged = sign_raw(constrained, "db.secret.internal.example")
    result = verify(tmp_path, forged, constrained)
    assert result.returncode != 0
    assert "excluded subtree violation" in result.stdout + result.stderr
    with pytest.raises(CaError) as refused:
        issue(constrained, request_for("db.secret.internal.example"), ANYWHERE)
    assert refused.value.reasons == [
        "db.secret.internal.example is excluded by the CA's name constraints "
        "(secret.internal.example)"
    ]


def test_a_host_like_common_name_without_dns_names_is_held_to_the_constraints(
    tmp_path, constrained
):
    forged = sign_raw(constrained, common_name="svc.other.com")
    result = verify(tmp_path, forged, constrained)
    assert result.returncode != 0
    client = Profile("mtls", usage="client")
    request = IssueRequest(generate_private_key("ec-p256").public_key(), subject_cn="svc.other.com")
    with pytest.raises(CaError, match=r"svc\.other\.com is outside the CA's name constraints"):
        issue(constrained, request, client)


def test_constraints_of_a_ca_higher_in_the_chain_also_apply(tmp_path, constrained):
    below = create_intermediate(CaSpec("CN=Unconstrained Child"), constrained)
    with pytest.raises(CaError, match="outside the CA's name constraints"):
        issue(below, request_for("api.other.com"), ANYWHERE)
    cert = issue(below, request_for("ok.internal.example"), ANYWHERE)
    assert verify(tmp_path, cert, below).returncode == 0


def test_the_profile_and_the_constraints_both_give_their_reasons(constrained):
    profile = Profile("web", allowed_domains=["*.internal.example"], max_days=30)
    with pytest.raises(CaError) as refused:
        issue(constrained, request_for("api.other.com", days=31), profile)
    assert refused.value.reasons == [
        "31 days is longer than the maximum of 30 days of profile “web”",
        "api.other.com is outside the allowed domains (*.internal.example)",
        "api.other.com is outside the CA's name constraints (permitted: internal.example)",
    ]


# --- CSRs ----------------------------------------------------------------------------------------


def test_csr_round_trip_and_issue_from_it(tmp_path, intermediate):
    key = generate_private_key("ec-p256")
    csr_pem = build_csr(key, ["www.example.test", "API.example.test"])
    checked = subprocess.run(
        ["openssl", "req", "-noout", "-verify", "-in", write(tmp_path, "r.csr", csr_pem)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert checked.returncode == 0 and "verify OK" in checked.stdout + checked.stderr
    info = read_csr(csr_pem)
    assert info.signature_valid
    assert info.subject_cn == "www.example.test"
    assert info.dns == ["www.example.test", "api.example.test"]
    assert info.ips == []
    cert = issue(intermediate, info.issue_request(days=30), ANYWHERE)
    assert cert.public_key() == key.public_key()
    assert verify(tmp_path, cert, intermediate).returncode == 0


def test_a_csr_made_by_openssl_is_read_in_der_too(tmp_path):
    key_path = write(tmp_path, "k.pem", private_key_pem(generate_private_key("rsa-2048")))
    der = subprocess.run(
        ["openssl", "req", "-new", "-key", key_path, "-subj", "/CN=db.example.test",
         "-addext", "subjectAltName=DNS:db.example.test,IP:10.1.2.3", "-outform", "DER"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    info = read_csr(der)
    assert (info.subject_cn, info.dns, info.ips) == (
        "db.example.test",
        ["db.example.test"],
        ["10.1.2.3"],
    )


def test_a_csr_with_a_bad_signature_is_refused():
    csr = x509.load_pem_x509_csr(build_csr(generate_private_key("ec-p256"), ["a.example.test"]))
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # inside the signature value
    with pytest.raises(CaError, match="The CSR's signature does not verify"):
        read_csr(bytes(der))
    assert read_csr(bytes(der), require_valid_signature=False).signature_valid is False


def test_something_that_is_not_a_csr_is_refused(root):
    with pytest.raises(CaError, match="no CSR PEM block"):
        read_csr(root.pem)
    with pytest.raises(CaError, match="could not be read"):
        read_csr(b"\x30\x03\x02\x01\x00")


# --- External root: CSR out, signed certificate in ---------------------------------------------


@pytest.fixture
def openssl_root(tmp_path) -> tuple[str, str]:
    """A root made by `openssl req -x509`; returns (cert path, key path)."""
    config = write(
        tmp_path,
        "root.cnf",
        b"[req]\ndistinguished_name=dn\nx509_extensions=v3_ca\n[dn]\n"
        b"[v3_ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
        b"subjectKeyIdentifier=hash\n",
    )
    cert, key = str(tmp_path / "ext-root.pem"), str(tmp_path / "ext-root.key")
    openssl(
        "req", "-x509", "-config", config, "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", key, "-out", cert, "-subj", "/CN=Offline Root/O=Elsewhere",
        "-days", "3650",
    )  # fmt: skip
    return cert, key


def sign_with_openssl(tmp_path: Path, csr_pem: bytes, root: tuple[str, str], *extra: str) -> bytes:
    out = str(tmp_path / "signed.pem")
    openssl(
        "x509", "-req", "-in", write(tmp_path, "int.csr", csr_pem), "-CA", root[0],
        "-CAkey", root[1], "-CAcreateserial", "-days", "365", "-out", out, *extra,
    )  # fmt: skip
    return Path(out).read_bytes()


def test_an_external_root_signs_our_intermediate_and_its_certificates_verify(
    tmp_path, openssl_root
):
    spec = CaSpec("CN=Acme Issuing CA (external root),O=Acme", permitted_dns=["internal.example"])
    csr_pem, key = intermediate_csr(spec)
    assert read_csr(csr_pem).signature_valid
    signed = sign_with_openssl(tmp_path, csr_pem, openssl_root, "-copy_extensions", "copyall")
    root_pem = Path(openssl_root[0]).read_bytes()
    ca = accept_signed_intermediate(key, signed, root_pem)
    assert ca.chain[0].subject.rfc4514_string() == "O=Elsewhere,CN=Offline Root"
    cert = issue(ca, request_for("api.internal.example"), ANYWHERE)
    result = subprocess.run(
        ["openssl", "verify", "-CAfile", openssl_root[0],
         "-untrusted", write(tmp_path, "i.pem", signed), write(tmp_path, "leaf.pem", pem(cert))],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    with pytest.raises(CaError, match="outside the CA's name constraints"):
        issue(ca, request_for("api.other.com"), ANYWHERE)


def test_a_signed_certificate_for_another_key_is_refused(tmp_path, openssl_root):
    csr_pem, _ = intermediate_csr(CaSpec("CN=Someone Else"))
    signed = sign_with_openssl(tmp_path, csr_pem, openssl_root, "-copy_extensions", "copyall")
    _, my_key = intermediate_csr(CaSpec("CN=Mine"))
    with pytest.raises(CaError, match="The certificate does not match this CA's key"):
        accept_signed_intermediate(my_key, signed, Path(openssl_root[0]).read_bytes())


def test_a_signed_certificate_that_is_not_a_ca_is_refused(tmp_path, openssl_root):
    csr_pem, key = intermediate_csr(CaSpec("CN=Not Really A CA"))
    extfile = write(tmp_path, "leaf.ext", b"basicConstraints=critical,CA:FALSE\n")
    signed = sign_with_openssl(tmp_path, csr_pem, openssl_root, "-extfile", extfile)
    with pytest.raises(CaError) as refused:
        accept_signed_intermediate(key, signed, Path(openssl_root[0]).read_bytes())
    assert str(refused.value).startswith(
        "The certificate is not a CA certificate (basicConstraints does not say CA:TRUE)."
    )


def test_a_signed_intermediate_without_its_root_is_refused(tmp_path, openssl_root):
    csr_pem, key = intermediate_csr(CaSpec("CN=Orphan"))
    signed = sign_with_openssl(tmp_path, csr_pem, openssl_root, "-copy_extensions", "copyall")
    with pytest.raises(CaError, match=r"does not lead to a root: .*Offline Root is missing"):
        accept_signed_intermediate(key, signed, b"")


def test_a_der_csr_ending_in_a_whitespace_byte_is_read_whole():
    """DER is binary: a signature whose last byte is 0x20 or 0x0a must not be stripped."""
    for _ in range(3000):  # about 1 in 43 DER CSRs ends in such a byte
        key = generate_private_key("ec-p256")
        der = x509.load_pem_x509_csr(build_csr(key, ["a.example.test"])).public_bytes(
            serialization.Encoding.DER
        )
        if der[-1:].isspace():
            break
    else:
        raise AssertionError("no CSR ended in a whitespace byte in 3000 tries")
    assert read_csr(der).dns == ["a.example.test"]
