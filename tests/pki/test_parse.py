import base64

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from inventory.pki.errors import PkiError
from inventory.pki.keys import spki_sha256
from inventory.pki.parse import NOTHING_RECOGNISED, pair_keys, parse_bundle, split_leaves
from tests.pki.factory import make_ca, make_key, make_leaf, openssl


def sha256s(certs: list[x509.Certificate]) -> list[str]:
    return [c.fingerprint(hashes.SHA256()).hex() for c in certs]


@pytest.fixture
def files(tmp_path, rsa_chain):
    """The RSA chain written as PEM files for the openssl command line."""
    (tmp_path / "leaf.pem").write_bytes(rsa_chain.leaf.pem)
    (tmp_path / "key.pem").write_bytes(rsa_chain.leaf.key_pem)
    (tmp_path / "chain.pem").write_bytes(rsa_chain.intermediate.pem + rsa_chain.root.pem)
    return tmp_path


# --- PEM -----------------------------------------------------------------------------------


def test_pem_with_many_blocks_keeps_file_order(ec_chain):
    data = ec_chain.leaf.pem + ec_chain.intermediate.pem + ec_chain.root.pem
    bundle = parse_bundle(data)
    assert sha256s(bundle.certificates) == sha256s(ec_chain.certs)
    assert bundle.keys == []
    assert bundle.warnings == []


def test_pem_with_crlf_bom_and_text_around_blocks(ec_chain):
    text = (
        b"\xef\xbb\xbf# exported from the old portal\r\n"
        + b"subject=CN = www.example.test\r\n"
        + ec_chain.leaf.pem.replace(b"\n", b"\r\n")
        + b"some trailing note\r\n"
        + ec_chain.leaf.key_pem.replace(b"\n", b"\r\n")
    )
    bundle = parse_bundle(text)
    assert sha256s(bundle.certificates) == [ec_chain.leaf.sha256]
    assert spki_sha256(bundle.keys[0]) == spki_sha256(ec_chain.leaf.key)


def test_identical_certificates_are_kept_once_with_a_warning(ec_chain):
    bundle = parse_bundle(ec_chain.leaf.pem + ec_chain.root.pem + ec_chain.leaf.pem)
    assert sha256s(bundle.certificates) == [ec_chain.leaf.sha256, ec_chain.root.sha256]
    assert bundle.warnings == ["Ignored 1 duplicate certificate."]


def test_openssl_pkcs12_nodes_output_with_bag_attributes_is_read(files, rsa_chain):
    openssl(
        "pkcs12", "-export", "-in", "leaf.pem", "-inkey", "key.pem", "-certfile", "chain.pem",
        "-name", "web", "-out", "bundle.p12", "-passout", "pass:pw", cwd=files,
    )  # fmt: skip
    dump = openssl("pkcs12", "-in", "bundle.p12", "-passin", "pass:pw", "-nodes", cwd=files)
    assert "Bag Attributes" in dump
    bundle = parse_bundle(dump.encode())
    assert set(sha256s(bundle.certificates)) == set(sha256s(rsa_chain.certs))
    assert [spki_sha256(k) for k in bundle.keys] == [spki_sha256(rsa_chain.leaf.key)]


def test_unrelated_pem_blocks_are_ignored_with_a_warning(ec_chain):
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(ec_chain.leaf.cert.subject)
        .sign(ec_chain.leaf.key, hashes.SHA256())
    )
    data = ec_chain.leaf.pem + csr.public_bytes(serialization.Encoding.PEM)
    bundle = parse_bundle(data)
    assert sha256s(bundle.certificates) == [ec_chain.leaf.sha256]
    assert bundle.warnings == ["Ignored a certificate signing request (CERTIFICATE REQUEST block)."]


def test_a_file_with_only_a_csr_says_so(ec_chain):
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(ec_chain.leaf.cert.subject)
        .sign(ec_chain.leaf.key, hashes.SHA256())
    )
    with pytest.raises(PkiError, match=r"^No certificate or private key found\. Ignored a cert"):
        parse_bundle(csr.public_bytes(serialization.Encoding.PEM))


def test_openssl_trusted_certificate_block(files, rsa_chain):
    out = openssl("x509", "-in", "leaf.pem", "-trustout", "-addtrust", "serverAuth", cwd=files)
    assert "-----BEGIN TRUSTED CERTIFICATE-----" in out
    assert sha256s(parse_bundle(out.encode()).certificates) == [rsa_chain.leaf.sha256]


# --- DER and PKCS#7 ------------------------------------------------------------------------


def test_der_certificate(ec_chain):
    bundle = parse_bundle(ec_chain.intermediate.der)
    assert sha256s(bundle.certificates) == [ec_chain.intermediate.sha256]


def test_bare_base64_of_der_is_accepted(ec_chain):
    bundle = parse_bundle(base64.encodebytes(ec_chain.leaf.der))
    assert sha256s(bundle.certificates) == [ec_chain.leaf.sha256]


@pytest.mark.filterwarnings("ignore:PKCS#7 certificates could not be parsed as DER")
@pytest.mark.parametrize("outform", ["PEM", "DER"])
def test_pkcs7_from_openssl(files, rsa_chain, outform):
    openssl(
        "crl2pkcs7", "-nocrl", "-certfile", "leaf.pem", "-certfile", "chain.pem",
        "-outform", outform, "-out", "bundle.p7b", cwd=files,
    )  # fmt: skip
    bundle = parse_bundle((files / "bundle.p7b").read_bytes())
    assert sha256s(bundle.certificates) == sha256s(rsa_chain.certs)


@pytest.mark.filterwarnings("ignore:PKCS#7 certificates could not be parsed as DER")
@pytest.mark.parametrize("outform", ["PEM", "DER"])
def test_streamed_cms_with_ber_indefinite_lengths(files, rsa_chain, outform):
    (files / "msg.txt").write_bytes(b"hello")
    openssl(
        "cms", "-sign", "-in", "msg.txt", "-signer", "leaf.pem", "-inkey", "key.pem",
        "-certfile", "chain.pem", "-stream", "-nodetach", "-outform", outform,
        "-out", "signed.p7", cwd=files,
    )  # fmt: skip
    data = (files / "signed.p7").read_bytes()
    assert b"-----BEGIN CMS-----" in data if outform == "PEM" else data[:2] == b"\x30\x80"
    bundle = parse_bundle(data)
    assert set(sha256s(bundle.certificates)) == set(sha256s(rsa_chain.certs))


# --- PKCS#12 -------------------------------------------------------------------------------

OPENSSL_P12_VARIANTS = {
    "aes": [],
    "legacy-rc2": ["-legacy"],
    "3des": ["-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES", "-macalg", "sha1"],
}


@pytest.mark.parametrize("variant", sorted(OPENSSL_P12_VARIANTS))
def test_openssl_pkcs12_variants_with_password(files, rsa_chain, variant):
    openssl(
        "pkcs12", "-export", "-in", "leaf.pem", "-inkey", "key.pem", "-certfile", "chain.pem",
        "-out", "f.p12", "-passout", "pass:Pa55 word", *OPENSSL_P12_VARIANTS[variant], cwd=files,
    )  # fmt: skip
    data = (files / "f.p12").read_bytes()
    bundle = parse_bundle(data, b"Pa55 word")
    assert bundle.certificates[0].fingerprint(hashes.SHA256()).hex() == rsa_chain.leaf.sha256
    assert set(sha256s(bundle.certificates)) == set(sha256s(rsa_chain.certs))
    assert [spki_sha256(k) for k in bundle.keys] == [spki_sha256(rsa_chain.leaf.key)]
    with pytest.raises(PkiError, match=r"^Wrong password for the PKCS#12 file\.$"):
        parse_bundle(data, b"wrong")
    with pytest.raises(
        PkiError, match=r"^The PKCS#12 file is password-protected; enter its password\.$"
    ):
        parse_bundle(data)


def test_pkcs12_without_password_opens_with_or_without_one(files, rsa_chain):
    openssl(
        "pkcs12", "-export", "-in", "leaf.pem", "-inkey", "key.pem", "-out", "open.p12",
        "-passout", "pass:", cwd=files,
    )  # fmt: skip
    data = (files / "open.p12").read_bytes()
    assert sha256s(parse_bundle(data).certificates) == [rsa_chain.leaf.sha256]
    assert sha256s(parse_bundle(data, b"typed anyway").certificates) == [rsa_chain.leaf.sha256]


def test_pkcs12_from_cryptography_with_extra_certs(ec_chain):
    data = pkcs12.serialize_key_and_certificates(
        b"site",
        ec_chain.leaf.key,
        ec_chain.leaf.cert,
        [ec_chain.intermediate.cert],
        serialization.BestAvailableEncryption(b"pw"),
    )
    bundle = parse_bundle(data, b"pw")
    assert sha256s(bundle.certificates) == [ec_chain.leaf.sha256, ec_chain.intermediate.sha256]
    assert len(bundle.keys) == 1


# --- Private keys --------------------------------------------------------------------------


def test_pkcs1_rsa_key_from_openssl_traditional(files, rsa_chain):
    openssl("rsa", "-in", "key.pem", "-traditional", "-out", "rsa.pem", cwd=files)
    data = (files / "rsa.pem").read_bytes()
    assert data.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    bundle = parse_bundle(data)
    assert [spki_sha256(k) for k in bundle.keys] == [spki_sha256(rsa_chain.leaf.key)]


def test_traditional_encrypted_rsa_key_with_proc_type_headers(files, rsa_chain):
    openssl(
        "rsa", "-in", "key.pem", "-traditional", "-aes256", "-passout", "pass:pw",
        "-out", "enc.pem", cwd=files,
    )  # fmt: skip
    data = (files / "enc.pem").read_bytes()
    assert b"Proc-Type: 4,ENCRYPTED" in data
    assert spki_sha256(parse_bundle(data, b"pw").keys[0]) == spki_sha256(rsa_chain.leaf.key)
    with pytest.raises(PkiError, match=r"^Wrong password for the encrypted private key\.$"):
        parse_bundle(data, b"bad")


def test_sec1_ec_key_with_parameters_block(tmp_path):
    openssl("ecparam", "-name", "secp384r1", "-genkey", "-out", "ec.pem", cwd=tmp_path)
    data = (tmp_path / "ec.pem").read_bytes()
    assert b"EC PARAMETERS" in data
    assert b"EC PRIVATE KEY" in data
    bundle = parse_bundle(data)
    assert len(bundle.keys) == 1
    assert bundle.keys[0].curve.name == "secp384r1"
    assert bundle.warnings == []


@pytest.mark.parametrize("kind", ["rsa-2048", "ec-p256", "ec-p384", "ec-p521", "ed25519", "ed448"])
@pytest.mark.parametrize("encoding", ["PEM", "DER"])
def test_pkcs8_keys_plain_and_encrypted(kind, encoding):
    key = make_key(kind)
    enc = getattr(serialization.Encoding, encoding)
    plain = key.private_bytes(enc, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    locked = key.private_bytes(
        enc, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    )
    assert spki_sha256(parse_bundle(plain).keys[0]) == spki_sha256(key)
    assert spki_sha256(parse_bundle(locked, b"pw").keys[0]) == spki_sha256(key)
    with pytest.raises(PkiError, match=r"^The private key is encrypted; enter its password\.$"):
        parse_bundle(locked)
    with pytest.raises(PkiError, match=r"^Wrong password for the encrypted private key\.$"):
        parse_bundle(locked, b"wrong")


@pytest.mark.parametrize("fmt", ["TraditionalOpenSSL"])
@pytest.mark.parametrize("kind", ["rsa-2048", "ec-p256"])
def test_traditional_der_keys(kind, fmt):
    key = make_key(kind)
    data = key.private_bytes(
        serialization.Encoding.DER,
        getattr(serialization.PrivateFormat, fmt),
        serialization.NoEncryption(),
    )
    assert spki_sha256(parse_bundle(data).keys[0]) == spki_sha256(key)


# --- Refusals ------------------------------------------------------------------------------


def test_begin_without_end_is_truncated(ec_chain):
    data = ec_chain.leaf.pem[:300]
    with pytest.raises(
        PkiError,
        match=r"^The data is truncated or corrupted: the CERTIFICATE block has no END line\.$",
    ):
        parse_bundle(data)


def test_second_block_cut_off_is_truncated_even_if_the_first_is_fine(ec_chain):
    with pytest.raises(PkiError, match="has no END line"):
        parse_bundle(ec_chain.leaf.pem + ec_chain.root.pem[:200])


def test_bad_base64_is_corrupted(ec_chain):
    lines = ec_chain.leaf.pem.split(b"\n")
    lines[3] = b"!!!!" + lines[3][4:]
    with pytest.raises(
        PkiError,
        match=r"^The data is truncated or corrupted: the CERTIFICATE block \(#1\) is not valid",
    ):
        parse_bundle(b"\n".join(lines))


def test_valid_base64_that_is_not_a_certificate_is_corrupted(ec_chain):
    body = base64.encodebytes(ec_chain.leaf.der[:-40]).decode()
    data = f"-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n".encode()
    with pytest.raises(PkiError, match=r"^The data is truncated or corrupted: the CERTIFICATE"):
        parse_bundle(data)


def test_truncated_der_states_the_sizes(ec_chain):
    data = ec_chain.leaf.der[:200]
    with pytest.raises(PkiError, match=r"^The data is truncated or corrupted: .* only 200 are"):
        parse_bundle(data)


def test_truncated_pkcs12_is_not_blamed_on_the_password(files):
    openssl(
        "pkcs12", "-export", "-in", "leaf.pem", "-inkey", "key.pem", "-out", "f.p12",
        "-passout", "pass:pw", cwd=files,
    )  # fmt: skip
    data = (files / "f.p12").read_bytes()
    with pytest.raises(PkiError, match=r"^The data is truncated or corrupted"):
        parse_bundle(data[: len(data) // 2], b"pw")


@pytest.mark.parametrize(
    "data",
    [b"hello world, this is a text file\n", bytes(range(1, 256)), b"0 is not DER\n"],
    ids=["text", "binary", "text-starting-with-0"],
)
def test_unrecognisable_input(data):
    with pytest.raises(PkiError) as caught:
        parse_bundle(data)
    assert str(caught.value) == NOTHING_RECOGNISED


def test_empty_file():
    with pytest.raises(PkiError, match=r"^The file is empty\.$"):
        parse_bundle(b" \r\n")


def test_too_many_certificates_are_refused_before_parsing(ec_chain):
    with pytest.raises(
        PkiError, match=r"^Too many certificates in one file \(612; the limit is 500\)\.$"
    ):
        parse_bundle(ec_chain.leaf.pem * 612)
    assert len(parse_bundle(ec_chain.leaf.pem * 3, max_certificates=3).certificates) == 1


# --- Relations ----------------------------------------------------------------------------


def test_split_leaves_by_basic_constraints(ec_chain):
    leaves, cas = split_leaves([ec_chain.root.cert, ec_chain.leaf.cert, ec_chain.intermediate.cert])
    assert sha256s(leaves) == [ec_chain.leaf.sha256]
    assert sha256s(cas) == [ec_chain.root.sha256, ec_chain.intermediate.sha256]


def test_split_leaves_without_basic_constraints_uses_who_issued_whom():
    root = make_ca("Old Root", basic_constraints=False)
    leaf = make_leaf(root, "old.example.test", basic_constraints=False)
    lone = make_leaf(None, "selfsigned.example.test", basic_constraints=False)
    leaves, cas = split_leaves([leaf.cert, root.cert, lone.cert])
    assert sha256s(leaves) == [leaf.sha256, lone.sha256]
    assert sha256s(cas) == [root.sha256]


def test_pair_keys_by_public_key(ec_chain):
    stranger = make_key("ec-p256")
    matched, unmatched = pair_keys(
        [ec_chain.leaf.cert, ec_chain.intermediate.cert], [stranger, ec_chain.leaf.key]
    )
    assert list(matched) == [ec_chain.leaf.sha256]
    assert matched[ec_chain.leaf.sha256] is ec_chain.leaf.key
    assert unmatched == [stranger]
