"""Export certificates and keys in the formats servers and platforms read."""

from __future__ import annotations

import base64
import io
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

import jks as pyjks
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.hazmat.primitives.serialization.pkcs12 import (
    PBES,
    serialize_key_and_certificates,
)

from . import keys as pki_keys
from .errors import PkiError
from .keys import is_self_signed

SERVER_BUNDLE_KINDS = ("nginx", "apache", "iis", "tomcat", "haproxy", "kubernetes")
PKCS12_ROUNDS = 100_000
PKCS12_LEGACY_ROUNDS = 2048
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


# --- Single formats ---------------------------------------------------------------------------


def pem(cert: x509.Certificate) -> bytes:
    """Return one certificate as PEM."""
    return cert.public_bytes(serialization.Encoding.PEM)


def pem_many(certs: list[x509.Certificate]) -> bytes:
    """Return certificates as concatenated PEM blocks, in the given order."""
    return b"".join(pem(cert) for cert in certs)


def der(cert: x509.Certificate) -> bytes:
    """Return one certificate as DER."""
    return cert.public_bytes(serialization.Encoding.DER)


def pkcs7_der(certs: list[x509.Certificate]) -> bytes:
    """Return certificates as a DER PKCS#7 (.p7b) bundle."""
    return pkcs7.serialize_certificates(certs, serialization.Encoding.DER)


def pkcs7_pem(certs: list[x509.Certificate]) -> bytes:
    """Return certificates as a PEM PKCS#7 bundle."""
    return pkcs7.serialize_certificates(certs, serialization.Encoding.PEM)


def pkcs12(
    key: PrivateKeyTypes | None,
    cert: x509.Certificate,
    chain: list[x509.Certificate],
    password: bytes,
    *,
    legacy: bool = False,
    friendly_name: bytes = b"certificate",
) -> bytes:
    """Return a PKCS#12/PFX file: AES-256 + SHA-256 MAC, or 3DES + SHA-1 MAC when legacy."""
    if not password:
        raise PkiError("A password is required to export a PKCS#12 file.")
    _check_key_matches(key, cert)
    builder = serialization.PrivateFormat.PKCS12.encryption_builder()
    if legacy:
        builder = builder.kdf_rounds(PKCS12_LEGACY_ROUNDS)
        builder = builder.key_cert_algorithm(PBES.PBESv1SHA1And3KeyTripleDESCBC)
        builder = builder.hmac_hash(hashes.SHA1())  # noqa: S303 - old Windows/Java need it
    else:
        builder = builder.kdf_rounds(PKCS12_ROUNDS)
        builder = builder.key_cert_algorithm(PBES.PBESv2SHA256AndAES256CBC)
        builder = builder.hmac_hash(hashes.SHA256())
    return serialize_key_and_certificates(
        friendly_name, key, cert, chain or None, builder.build(password)
    )


def jks(
    key: PrivateKeyTypes,
    cert: x509.Certificate,
    chain: list[x509.Certificate],
    password: str,
    alias: str = "certificate",
) -> bytes:
    """Return a Java KeyStore holding the key and its chain under one alias."""
    if not password:
        raise PkiError("A password is required to export a Java KeyStore.")
    _check_key_matches(key, cert)
    certs = [der(c) for c in [cert, *chain]]
    entry = pyjks.PrivateKeyEntry.new(
        _alias(alias), certs, pki_keys.private_key_pkcs8_der(key), "pkcs8"
    )
    entry.encrypt(password)
    return pyjks.KeyStore.new("jks", [entry]).saves(password)


def truststore_jks(certs: list[x509.Certificate], password: str) -> bytes:
    """Return a Java trust store with one trusted certificate entry per certificate."""
    if not password:
        raise PkiError("A password is required to export a Java trust store.")
    entries = []
    for number, cert in enumerate(certs, start=1):
        alias = _alias(f"{_common_name(cert) or 'ca'}-{number}")
        entries.append(pyjks.TrustedCertEntry.new(alias, der(cert)))
    return pyjks.KeyStore.new("jks", entries).saves(password)


def _alias(text: str) -> str:
    """Make a keystore alias: lower case (keytool lowercases them), no odd characters."""
    alias = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-.")
    return alias[:64] or "certificate"


def _common_name(cert: x509.Certificate) -> str | None:
    """Return the subject's first common name, if any."""
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


def _check_key_matches(key: PrivateKeyTypes | None, cert: x509.Certificate) -> None:
    """Refuse to package a key with a certificate it does not belong to."""
    if key is not None and pki_keys.spki_sha256(key) != pki_keys.spki_sha256(cert.public_key()):
        raise PkiError("The private key does not belong to this certificate.")


# --- Server bundles ---------------------------------------------------------------------------


def server_bundle(
    kind: str,
    *,
    name: str,
    key: PrivateKeyTypes,
    cert: x509.Certificate,
    chain: list[x509.Certificate],
    password: bytes | None,
) -> bytes:
    """Return a zip with the files (and a README) one kind of server needs."""
    builders: dict[str, Callable[[_Bundle], list[tuple[str, bytes]]]] = {
        "nginx": _nginx,
        "apache": _apache,
        "iis": _iis,
        "tomcat": _tomcat,
        "haproxy": _haproxy,
        "kubernetes": _kubernetes,
    }
    if kind not in builders:
        raise PkiError(
            f"Unknown server type {kind!r}; choose one of {', '.join(SERVER_BUNDLE_KINDS)}."
        )
    if key is None:
        raise PkiError("A server bundle needs the certificate's private key.")
    _check_key_matches(key, cert)
    served = [c for c in chain if not is_self_signed(c)]
    bundle = _Bundle(_safe_name(name), key, cert, served, password or None)
    return _zip(builders[kind](bundle))


@dataclass
class _Bundle:
    """The inputs of one server bundle; chain is what servers send (no self-signed root)."""

    name: str
    key: PrivateKeyTypes
    cert: x509.Certificate
    chain: list[x509.Certificate]
    password: bytes | None

    def fullchain(self) -> bytes:
        """Return leaf + intermediates as PEM."""
        return pem_many([self.cert, *self.chain])

    def key_pem(self) -> bytes:
        """Return the key as PKCS#8 PEM, encrypted when a password was chosen."""
        return pki_keys.private_key_pem(self.key, self.password)

    def required_password(self, server: str) -> bytes:
        """Return the password, or refuse: this server's keystore must have one."""
        if not self.password:
            raise PkiError(f"Choose a password: {server} keystores must be password-protected.")
        return self.password

    def refuse_password(self, server: str) -> None:
        """Refuse a password for servers that cannot read an encrypted key."""
        if self.password:
            raise PkiError(
                f"{server} cannot read an encrypted private key; export without a password."
            )


def _nginx(b: _Bundle) -> list[tuple[str, bytes]]:
    """Return fullchain.pem, privkey.pem and the nginx directives."""
    directory = f"/etc/nginx/tls/{b.name}"
    lines = [
        f"nginx files for {b.name}",
        "",
        "Copy fullchain.pem and privkey.pem to the server, then in the server block:",
        "",
        f"    ssl_certificate     {directory}/fullchain.pem;",
        f"    ssl_certificate_key {directory}/privkey.pem;",
    ]
    if b.password:
        lines += [
            f"    ssl_password_file   {directory}/passphrase.txt;",
            "",
            "privkey.pem is encrypted: put the password you chose in passphrase.txt",
            "(readable only by root), or nginx cannot start.",
        ]
    lines += [
        "",
        "Keep privkey.pem readable only by root (chmod 600).",
        "Then: nginx -t && nginx -s reload",
    ]
    return [("fullchain.pem", b.fullchain()), ("privkey.pem", b.key_pem()), _readme(lines)]


def _apache(b: _Bundle) -> list[tuple[str, bytes]]:
    """Return cert.pem, chain.pem, privkey.pem and the mod_ssl directives."""
    directory = f"/etc/apache2/tls/{b.name}"
    lines = [
        f"Apache httpd (mod_ssl) files for {b.name}",
        "",
        "In the <VirtualHost *:443> block:",
        "",
        f"    SSLCertificateFile      {directory}/cert.pem",
        f"    SSLCertificateKeyFile   {directory}/privkey.pem",
        f"    SSLCertificateChainFile {directory}/chain.pem",
        "",
        "Apache 2.4.8 and later also accept the chain appended to SSLCertificateFile;",
        "SSLCertificateChainFile still works there.",
    ]
    if b.password:
        lines += [
            "",
            "privkey.pem is encrypted: Apache asks for the password at start",
            "(or set SSLPassPhraseDialog).",
        ]
    lines += ["", "Keep privkey.pem readable only by root (chmod 600)."]
    files = [("cert.pem", pem(b.cert)), ("chain.pem", pem_many(b.chain))]
    return [*files, ("privkey.pem", b.key_pem()), _readme(lines)]


def _iis(b: _Bundle) -> list[tuple[str, bytes]]:
    """Return a modern and a legacy PFX for Windows/IIS."""
    password = b.required_password("IIS")
    lines = [
        f"IIS / Windows files for {b.name}",
        "",
        "certificate.pfx         AES-256 (Windows Server 2019 and later)",
        "certificate-legacy.pfx  3DES/SHA-1 (Windows Server 2016 and older)",
        "",
        "Import in IIS Manager > Server Certificates > Import, or with PowerShell:",
        "    Import-PfxCertificate -FilePath certificate.pfx `",
        "        -CertStoreLocation Cert:\\LocalMachine\\My -Password (Read-Host -AsSecureString)",
        "",
        "Both files are protected by the password you chose when exporting;",
        "it is not stored in this archive.",
    ]
    return [
        (
            "certificate.pfx",
            pkcs12(b.key, b.cert, b.chain, password, friendly_name=b.name.encode()),
        ),
        (
            "certificate-legacy.pfx",
            pkcs12(b.key, b.cert, b.chain, password, legacy=True, friendly_name=b.name.encode()),
        ),
        _readme(lines),
    ]


def _tomcat(b: _Bundle) -> list[tuple[str, bytes]]:
    """Return keystore.p12, keystore.jks and a server.xml Connector snippet."""
    password = b.required_password("Tomcat")
    alias = _alias(b.name)
    snippet = _tomcat_connector("conf/keystore.p12", "PKCS12", alias, _tomcat_key_type(b.key))
    lines = [
        f"Apache Tomcat files for {b.name}",
        "",
        "Copy keystore.p12 to $CATALINA_BASE/conf/ and add server.xml.txt to server.xml,",
        "replacing the password placeholder with the password you chose when exporting.",
        "keystore.jks holds the same key for older Java; set",
        'certificateKeystoreType="JKS" and certificateKeystoreFile="conf/keystore.jks" to use it.',
        f"The key alias is {alias}.",
    ]
    return [
        ("keystore.p12", pkcs12(b.key, b.cert, b.chain, password, friendly_name=alias.encode())),
        ("keystore.jks", jks(b.key, b.cert, b.chain, password.decode("utf-8"), alias=alias)),
        ("server.xml.txt", snippet.encode()),
        _readme(lines),
    ]


def _tomcat_connector(path: str, store_type: str, alias: str, key_type: str) -> str:
    """Return the Tomcat 9+ Connector element with a password placeholder."""
    return (
        '<Connector port="8443" protocol="org.apache.coyote.http11.Http11NioProtocol"\n'
        '           maxThreads="150" SSLEnabled="true">\n'
        "    <SSLHostConfig>\n"
        f"        <Certificate certificateKeystoreFile={quoteattr(path)}\n"
        f"                     certificateKeystoreType={quoteattr(store_type)}\n"
        f"                     certificateKeyAlias={quoteattr(alias)}\n"
        '                     certificateKeystorePassword="CHANGE-ME-the-password-you-chose"\n'
        f"                     type={quoteattr(key_type)}/>\n"
        "    </SSLHostConfig>\n"
        "</Connector>\n"
    )


def _tomcat_key_type(key: PrivateKeyTypes) -> str:
    """Return Tomcat's Certificate type attribute for a key."""
    if isinstance(key, rsa.RSAPrivateKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "EC"
    return "UNDEFINED"


def _haproxy(b: _Bundle) -> list[tuple[str, bytes]]:
    """Return one combined PEM (leaf, chain, key) as HAProxy's crt expects."""
    b.refuse_password("HAProxy")
    combined = b.fullchain() + b.key_pem()
    lines = [
        f"HAProxy file for {b.name}",
        "",
        f"{b.name}.pem holds the certificate, its chain and the private key, in that order.",
        "Copy it to /etc/haproxy/certs/ (chmod 600) and reference it in the frontend:",
        "",
        f"    bind :443 ssl crt /etc/haproxy/certs/{b.name}.pem",
    ]
    return [(f"{b.name}.pem", combined), _readme(lines)]


def _kubernetes(b: _Bundle) -> list[tuple[str, bytes]]:
    """Return a kubernetes.io/tls Secret manifest."""
    b.refuse_password("Kubernetes")
    crt = base64.b64encode(b.fullchain()).decode("ascii")
    key = base64.b64encode(b.key_pem()).decode("ascii")
    manifest = (
        "apiVersion: v1\n"
        "kind: Secret\n"
        "metadata:\n"
        f"  name: {dns1123_name(b.name)}\n"
        "type: kubernetes.io/tls\n"
        "data:\n"
        f"  tls.crt: {crt}\n"
        f"  tls.key: {key}\n"
    )
    return [("secret.yaml", manifest.encode())]


def dns1123_name(name: str) -> str:
    """Turn any text into a Kubernetes object name (DNS-1123 subdomain)."""
    text = re.sub(r"[^a-z0-9.-]+", "-", name.lower())
    text = re.sub(r"-*\.+-*", ".", text)
    text = re.sub(r"-{2,}", "-", text).strip(".-")[:253].strip(".-")
    return text or "certificate"


def _safe_name(name: str) -> str:
    """Make a file name stem from user text: no path separators, no dot files."""
    text = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-_")
    return text[:64].strip(".-_") or "certificate"


def _readme(lines: list[str]) -> tuple[str, bytes]:
    """Return the README.txt member."""
    return "README.txt", ("\n".join(lines) + "\n").encode("utf-8")


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    """Write members to a zip with fixed order, dates and permissions, so output is repeatable."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for filename, content in members:
            info = zipfile.ZipInfo(filename, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o600 if _is_secret(filename) else 0o644) << 16
            archive.writestr(info, content)
    return buffer.getvalue()


def _is_secret(filename: str) -> bool:
    """Tell whether a member holds a private key."""
    return filename != "README.txt" and not filename.endswith(("cert.pem", "chain.pem"))
