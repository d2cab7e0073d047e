import base64
import io
import subprocess
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import jks as pyjks
import pytest
from cryptography.hazmat.primitives import hashes

from inventory.pki import formats
from inventory.pki.errors import PkiError
from inventory.pki.keys import private_key_pkcs8_der, spki_sha256
from inventory.pki.parse import parse_bundle
from tests.pki.factory import Chain, make_key, openssl

PASSWORD = "Tr0ub4dor&3 x"


def sha256s(certs) -> list[str]:
    return [c.fingerprint(hashes.SHA256()).hex() for c in certs]


def colon_hex(sha256: str) -> str:
    return ":".join(sha256[i : i + 2] for i in range(0, len(sha256), 2)).upper()


def openssl_stderr(*args: str, cwd: Path) -> str:
    """Run openssl for commands that report on stderr (pkcs12 -info)."""
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, check=True)
    return result.stderr.decode()


def keytool_list(path: Path, password: str) -> str:
    result = subprocess.run(
        ["keytool", "-list", "-v", "-keystore", str(path), "-storepass", password],
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    return result.stdout.decode()


@pytest.fixture
def pems(tmp_path, ec_chain: Chain) -> Path:
    (tmp_path / "root.pem").write_bytes(ec_chain.root.pem)
    (tmp_path / "intermediate.pem").write_bytes(ec_chain.intermediate.pem)
    return tmp_path


# --- Certificates ------------------------------------------------------------------------


def test_pem_and_der_are_read_by_openssl(tmp_path, ec_chain):
    (tmp_path / "c.pem").write_bytes(formats.pem(ec_chain.leaf.cert))
    (tmp_path / "c.der").write_bytes(formats.der(ec_chain.leaf.cert))
    for name, form in (("c.pem", "PEM"), ("c.der", "DER")):
        out = openssl(
            "x509", "-in", name, "-inform", form, "-noout", "-fingerprint", "-sha256", cwd=tmp_path
        )
        assert out.strip() == f"sha256 Fingerprint={colon_hex(ec_chain.leaf.sha256)}"


def test_pem_many_verifies_with_openssl(pems, ec_chain):
    (pems / "full.pem").write_bytes(
        formats.pem_many([ec_chain.leaf.cert, ec_chain.intermediate.cert])
    )
    out = openssl("verify", "-CAfile", "root.pem", "-untrusted", "full.pem", "full.pem", cwd=pems)
    assert out.strip() == "full.pem: OK"


@pytest.mark.parametrize("encoding", ["der", "pem"])
def test_pkcs7_holds_the_same_certificates(tmp_path, ec_chain, encoding):
    export = formats.pkcs7_der if encoding == "der" else formats.pkcs7_pem
    (tmp_path / "b.p7b").write_bytes(export(ec_chain.certs))
    out = openssl(
        "pkcs7", "-in", "b.p7b", "-inform", encoding.upper(), "-print_certs", cwd=tmp_path
    )
    # PKCS#7 stores a SET OF certificates, which DER sorts: order is not kept.
    assert sorted(sha256s(parse_bundle(out.encode()).certificates)) == sorted(
        sha256s(ec_chain.certs)
    )


# --- PKCS#12 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("legacy", "markers"),
    [
        (False, ["PBES2, PBKDF2, AES-256-CBC", "MAC: sha256"]),
        (True, ["pbeWithSHA1And3-KeyTripleDES-CBC", "MAC: sha1"]),
    ],
)
def test_pkcs12_is_read_by_openssl(tmp_path, rsa_chain, legacy, markers):
    data = formats.pkcs12(
        rsa_chain.leaf.key,
        rsa_chain.leaf.cert,
        [rsa_chain.intermediate.cert],
        PASSWORD.encode(),
        legacy=legacy,
    )
    (tmp_path / "f.p12").write_bytes(data)
    passin = f"pass:{PASSWORD}"
    info = openssl_stderr(
        "pkcs12", "-in", "f.p12", "-passin", passin, "-info", "-noout", cwd=tmp_path
    )
    for marker in markers:
        assert marker in info
    certs = openssl("pkcs12", "-in", "f.p12", "-passin", passin, "-nokeys", cwd=tmp_path)
    assert sha256s(parse_bundle(certs.encode()).certificates) == sha256s(rsa_chain.certs[:2])
    key = openssl("pkcs12", "-in", "f.p12", "-passin", passin, "-nocerts", "-nodes", cwd=tmp_path)
    assert spki_sha256(parse_bundle(key.encode()).keys[0]) == spki_sha256(rsa_chain.leaf.key)
    assert "friendlyName: certificate" in key


def test_pkcs12_refuses_an_empty_password_and_a_foreign_key(ec_chain):
    with pytest.raises(PkiError, match=r"^A password is required to export a PKCS#12 file\.$"):
        formats.pkcs12(ec_chain.leaf.key, ec_chain.leaf.cert, [], b"")
    with pytest.raises(PkiError, match=r"^The private key does not belong to this certificate\.$"):
        formats.pkcs12(make_key(), ec_chain.leaf.cert, [], b"pw")


# --- Java keystores -----------------------------------------------------------------------


def test_jks_has_a_private_key_entry_that_keytool_lists(tmp_path, ec_chain):
    data = formats.jks(
        ec_chain.leaf.key, ec_chain.leaf.cert, [ec_chain.intermediate.cert], PASSWORD, alias="Web"
    )
    (tmp_path / "k.jks").write_bytes(data)
    out = keytool_list(tmp_path / "k.jks", PASSWORD)
    assert "Alias name: web" in out
    assert "Entry type: PrivateKeyEntry" in out
    assert "Certificate chain length: 2" in out
    assert f"SHA256: {colon_hex(ec_chain.leaf.sha256)}" in out
    entry = pyjks.KeyStore.loads(data, PASSWORD).private_keys["web"]
    assert entry.pkey_pkcs8 == private_key_pkcs8_der(ec_chain.leaf.key)


def test_truststore_lists_trusted_entries(tmp_path, ec_chain):
    data = formats.truststore_jks([ec_chain.root.cert, ec_chain.intermediate.cert], PASSWORD)
    (tmp_path / "t.jks").write_bytes(data)
    out = keytool_list(tmp_path / "t.jks", PASSWORD)
    assert out.count("Entry type: trustedCertEntry") == 2
    assert "Alias name: test-root-ca-1" in out
    assert f"SHA256: {colon_hex(ec_chain.root.sha256)}" in out


# --- Server bundles -----------------------------------------------------------------------


def unzip(tmp_path: Path, data: bytes) -> tuple[list[str], Path]:
    """Unpack with the real unzip tool; return the member names and the directory."""
    (tmp_path / "bundle.zip").write_bytes(data)
    names = (
        subprocess.run(
            ["unzip", "-Z1", "bundle.zip"], cwd=tmp_path, capture_output=True, check=True
        )
        .stdout.decode()
        .split()
    )
    subprocess.run(["unzip", "-q", "-o", "bundle.zip", "-d", "out"], cwd=tmp_path, check=True)
    return names, tmp_path / "out"


def bundle(kind: str, chain: Chain, *, name="web", password: bytes | None = None) -> bytes:
    return formats.server_bundle(
        kind,
        name=name,
        key=chain.leaf.key,
        cert=chain.leaf.cert,
        chain=[chain.intermediate.cert, chain.root.cert],
        password=password,
    )


def test_nginx_bundle(pems, ec_chain):
    names, out = unzip(pems, bundle("nginx", ec_chain))
    assert names == ["fullchain.pem", "privkey.pem", "README.txt"]
    full = parse_bundle((out / "fullchain.pem").read_bytes())
    assert sha256s(full.certificates) == [ec_chain.leaf.sha256, ec_chain.intermediate.sha256]
    key = parse_bundle((out / "privkey.pem").read_bytes()).keys[0]
    assert spki_sha256(key) == spki_sha256(ec_chain.leaf.key)
    verify = ["verify", "-CAfile", "root.pem", "-untrusted", "out/fullchain.pem"]
    assert openssl(*verify, "out/fullchain.pem", cwd=pems).strip().endswith(": OK")
    readme = (out / "README.txt").read_text()
    assert "ssl_certificate     /etc/nginx/tls/web/fullchain.pem;" in readme
    assert "ssl_certificate_key /etc/nginx/tls/web/privkey.pem;" in readme
    assert "ssl_password_file" not in readme
    assert (
        zipfile.ZipFile(io.BytesIO(bundle("nginx", ec_chain))).getinfo("privkey.pem").external_attr
        >> 16
        == 0o600
    )


def test_nginx_bundle_is_repeatable(ec_chain):
    assert bundle("nginx", ec_chain) == bundle("nginx", ec_chain)


def test_nginx_bundle_with_password_encrypts_the_key(tmp_path, ec_chain):
    _, out = unzip(tmp_path, bundle("nginx", ec_chain, password=b"hunter2"))
    data = (out / "privkey.pem").read_bytes()
    assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert spki_sha256(parse_bundle(data, b"hunter2").keys[0]) == spki_sha256(ec_chain.leaf.key)
    readme = (out / "README.txt").read_text()
    assert "ssl_password_file" in readme
    assert "hunter2" not in readme


def test_apache_bundle(tmp_path, ec_chain):
    names, out = unzip(tmp_path, bundle("apache", ec_chain))
    assert names == ["cert.pem", "chain.pem", "privkey.pem", "README.txt"]
    cert = parse_bundle((out / "cert.pem").read_bytes()).certificates
    chain = parse_bundle((out / "chain.pem").read_bytes()).certificates
    assert sha256s(cert) == [ec_chain.leaf.sha256]
    assert sha256s(chain) == [ec_chain.intermediate.sha256]
    readme = (out / "README.txt").read_text()
    for directive in ("SSLCertificateFile ", "SSLCertificateKeyFile ", "SSLCertificateChainFile "):
        assert directive in readme


def test_iis_bundle_has_modern_and_legacy_pfx(tmp_path, rsa_chain):
    names, out = unzip(tmp_path, bundle("iis", rsa_chain, password=PASSWORD.encode()))
    assert names == ["certificate.pfx", "certificate-legacy.pfx", "README.txt"]
    for pfx in ("certificate.pfx", "certificate-legacy.pfx"):
        text = openssl(
            "pkcs12", "-in", f"out/{pfx}", "-passin", f"pass:{PASSWORD}", "-nokeys", cwd=tmp_path
        )
        assert sha256s(parse_bundle(text.encode()).certificates)[0] == rsa_chain.leaf.sha256
    readme = (out / "README.txt").read_text()
    assert "password you chose" in readme
    assert PASSWORD not in readme


def test_tomcat_bundle(tmp_path, rsa_chain):
    names, out = unzip(tmp_path, bundle("tomcat", rsa_chain, password=PASSWORD.encode()))
    assert names == ["keystore.p12", "keystore.jks", "server.xml.txt", "README.txt"]
    p12 = parse_bundle((out / "keystore.p12").read_bytes(), PASSWORD.encode())
    assert sha256s(p12.certificates)[0] == rsa_chain.leaf.sha256
    listing = keytool_list(out / "keystore.jks", PASSWORD)
    assert "Entry type: PrivateKeyEntry" in listing
    assert f"SHA256: {colon_hex(rsa_chain.leaf.sha256)}" in listing
    snippet = (out / "server.xml.txt").read_text()
    connector = ElementTree.fromstring(snippet)
    assert connector.get("SSLEnabled") == "true"
    certificate = connector.find("SSLHostConfig/Certificate")
    assert certificate.get("certificateKeystoreFile") == "conf/keystore.p12"
    assert certificate.get("type") == "RSA"
    assert PASSWORD not in snippet
    assert PASSWORD not in (out / "README.txt").read_text()


def test_haproxy_bundle_is_leaf_chain_then_key(tmp_path, ec_chain):
    names, out = unzip(tmp_path, bundle("haproxy", ec_chain, name="../../etc/passwd"))
    assert names == ["etc-passwd.pem", "README.txt"]
    data = (out / "etc-passwd.pem").read_bytes()
    parsed = parse_bundle(data)
    assert sha256s(parsed.certificates) == [ec_chain.leaf.sha256, ec_chain.intermediate.sha256]
    assert spki_sha256(parsed.keys[0]) == spki_sha256(ec_chain.leaf.key)
    assert data.rindex(b"BEGIN CERTIFICATE") < data.index(b"BEGIN PRIVATE KEY")
    assert "crt /etc/haproxy/certs/etc-passwd.pem" in (out / "README.txt").read_text()


def test_kubernetes_secret_decodes_to_the_same_pem(tmp_path, ec_chain):
    names, out = unzip(tmp_path, bundle("kubernetes", ec_chain, name="My App_Prod *.Example.com"))
    assert names == ["secret.yaml"]
    lines = (out / "secret.yaml").read_text().splitlines()
    fields = dict(line.strip().split(": ", 1) for line in lines if ": " in line)
    assert lines[0] == "apiVersion: v1"
    assert fields["kind"] == "Secret"
    assert fields["type"] == "kubernetes.io/tls"
    assert fields["name"] == "my-app-prod.example.com"
    crt = base64.b64decode(fields["tls.crt"])
    assert crt == formats.pem_many([ec_chain.leaf.cert, ec_chain.intermediate.cert])
    key = parse_bundle(base64.b64decode(fields["tls.key"])).keys[0]
    assert spki_sha256(key) == spki_sha256(ec_chain.leaf.key)


@pytest.mark.parametrize(
    ("kind", "password", "message"),
    [
        ("iis", None, "Choose a password: IIS keystores must be password-protected."),
        ("tomcat", b"", "Choose a password: Tomcat keystores must be password-protected."),
        ("haproxy", b"pw", "HAProxy cannot read an encrypted private key; export without a"),
        ("kubernetes", b"pw", "Kubernetes cannot read an encrypted private key; export without"),
        ("caddy", None, "Unknown server type 'caddy'; choose one of nginx, apache, iis"),
    ],
)
def test_server_bundle_refusals(ec_chain, kind, password, message):
    with pytest.raises(PkiError) as caught:
        bundle(kind, ec_chain, password=password)
    assert str(caught.value).startswith(message)


def test_server_bundle_refuses_a_key_of_another_certificate(ec_chain):
    with pytest.raises(PkiError, match="does not belong"):
        formats.server_bundle(
            "nginx", name="x", key=make_key(), cert=ec_chain.leaf.cert, chain=[], password=None
        )


@pytest.mark.parametrize(
    ("name", "expected"),
    [("web", "web"), ("*.Example.COM", "example.com"), ("--", "certificate"), ("a__b..c", "a-b.c")],
)
def test_dns1123_names(name, expected):
    assert formats.dns1123_name(name) == expected
