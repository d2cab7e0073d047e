"""Build test CAs, leaves and chains with cryptography (no Django; any test suite may import it)."""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from inventory.pki.keys import generate_private_key


@dataclass
class Issued:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: PrivateKeyTypes

    @property
    def pem(self) -> bytes:
        """Return the certificate as PEM."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def der(self) -> bytes:
        """Return the certificate as DER."""
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def key_pem(self) -> bytes:
        """Return the key as unencrypted PKCS#8 PEM."""
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def sha256(self) -> str:
        """Return the certificate's SHA-256 fingerprint as lowercase hex."""
        return self.cert.fingerprint(hashes.SHA256()).hex()


@dataclass
class Chain:
    """A root → intermediate → leaf hierarchy."""

    root: Issued
    intermediate: Issued
    leaf: Issued

    @property
    def certs(self) -> list[x509.Certificate]:
        """Return the certificates leaf first."""
        return [self.leaf.cert, self.intermediate.cert, self.root.cert]


def make_key(kind: str = "ec-p256") -> PrivateKeyTypes:
    """Generate a key: any inventory.pki.keys kind, plus "ed448", "rsa-1024" and "ec-p224"."""
    extra = {
        "ed448": ed448.Ed448PrivateKey.generate,
        "rsa-1024": lambda: rsa.generate_private_key(65537, 1024),
        "ec-p224": lambda: ec.generate_private_key(ec.SECP224R1()),
    }
    return extra[kind]() if kind in extra else generate_private_key(kind)


def make_ca(
    name: str = "Test Root CA",
    *,
    issuer: Issued | None = None,
    key_kind: str = "ec-p256",
    key: PrivateKeyTypes | None = None,
    days: int = 3650,
    not_before: datetime | None = None,
    hash_alg: hashes.HashAlgorithm | None = None,
    key_ids: bool = True,
    basic_constraints: bool = True,
) -> Issued:
    """Make a CA certificate: self-signed root, or an intermediate when issuer is given.

    hash_alg=hashes.SHA1() works only with an RSA signer (the certificate is re-signed by hand).
    """
    key = key or make_key(key_kind)
    extensions: list[x509.ExtensionType] = []
    if basic_constraints:
        extensions.append(x509.BasicConstraints(ca=True, path_length=None))
        extensions.append(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        )
    cert = _build(
        subject=_cn(name),
        key=key,
        issuer=issuer,
        days=days,
        not_before=not_before,
        hash_alg=hash_alg,
        extensions=extensions,
        key_ids=key_ids,
    )
    return Issued(cert, key)


def make_leaf(
    issuer: Issued | None,
    name: str = "www.example.test",
    *,
    sans: list[str] | None = None,
    days: int = 90,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    key_kind: str = "ec-p256",
    key: PrivateKeyTypes | None = None,
    hash_alg: hashes.HashAlgorithm | None = None,
    subject: x509.Name | None = None,
    extensions: list[x509.ExtensionType] | None = None,
    key_ids: bool = True,
    basic_constraints: bool = True,
) -> Issued:
    """Make a TLS server leaf (self-signed when issuer is None); sans default to [name].

    Validity starts an hour ago (or at not_before) and lasts `days`, unless not_after is given.
    """
    key = key or make_key(key_kind)
    sans = [name] if sans is None else sans
    extra: list[x509.ExtensionType] = []
    if basic_constraints:
        extra.append(x509.BasicConstraints(ca=False, path_length=None))
    extra.append(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]))
    if sans:
        extra.append(x509.SubjectAlternativeName([_general_name(s) for s in sans]))
    cert = _build(
        subject=subject or _cn(name),
        key=key,
        issuer=issuer,
        days=days,
        not_before=not_before,
        not_after=not_after,
        hash_alg=hash_alg,
        extensions=extra + list(extensions or []),
        key_ids=key_ids,
    )
    return Issued(cert, key)


def make_chain(
    *, key_kind: str = "ec-p256", leaf_key_kind: str | None = None, sans: list[str] | None = None
) -> Chain:
    """Make Test Root CA → Test Intermediate CA → www.example.test."""
    root = make_ca("Test Root CA", key_kind=key_kind)
    intermediate = make_ca("Test Intermediate CA", issuer=root, key_kind=key_kind, days=1825)
    leaf = make_leaf(intermediate, sans=sans, key_kind=leaf_key_kind or key_kind)
    return Chain(root, intermediate, leaf)


def openssl(*args: str, cwd: Path | None = None, stdin: bytes | None = None) -> str:
    """Run the openssl command line tool and return stdout; fail loudly with its stderr."""
    result = subprocess.run(
        ["openssl", *args], cwd=cwd, input=stdin, capture_output=True, check=False
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout.decode(errors="replace")


def _build(
    *,
    subject: x509.Name,
    key: PrivateKeyTypes,
    issuer: Issued | None,
    days: int,
    not_before: datetime | None,
    hash_alg: hashes.HashAlgorithm | None,
    extensions: list[x509.ExtensionType],
    key_ids: bool,
    not_after: datetime | None = None,
) -> x509.Certificate:
    """Sign a certificate for key; issuer None means self-signed."""
    start = not_before or datetime.now(UTC) - timedelta(hours=1)
    signer = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(not_after or start + timedelta(days=days))
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=_critical(extension))
    if key_ids:
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()),
            critical=False,
        )
    if isinstance(hash_alg, hashes.SHA1):
        return _sign_with_sha1(builder.sign(signer, hashes.SHA256()), signer)
    return builder.sign(signer, _hash_for(signer, hash_alg))


_SHA256_RSA = bytes.fromhex("300d06092a864886f70d01010b0500")
_SHA1_RSA = bytes.fromhex("300d06092a864886f70d0101050500")


def _sign_with_sha1(cert: x509.Certificate, signer: PrivateKeyTypes) -> x509.Certificate:
    """Re-sign a certificate with sha1WithRSAEncryption (cryptography no longer will)."""
    assert isinstance(signer, rsa.RSAPrivateKey), "SHA-1 test certificates need an RSA issuer"
    tbs = cert.tbs_certificate_bytes.replace(_SHA256_RSA, _SHA1_RSA, 1)
    signature = signer.sign(tbs, padding.PKCS1v15(), hashes.SHA1())
    bits = _der(0x03, b"\x00" + signature)
    return x509.load_der_x509_certificate(_der(0x30, tbs + _SHA1_RSA + bits))


def _der(tag: int, content: bytes) -> bytes:
    """Encode one DER element."""
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def _critical(extension: x509.ExtensionType) -> bool:
    """Mark basicConstraints and keyUsage critical, as CAs do."""
    return isinstance(extension, x509.BasicConstraints | x509.KeyUsage)


def _hash_for(
    key: PrivateKeyTypes, hash_alg: hashes.HashAlgorithm | None
) -> hashes.HashAlgorithm | None:
    """EdDSA signs without a separate hash; everything else defaults to SHA-256."""
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None
    return hash_alg or hashes.SHA256()


def _cn(name: str) -> x509.Name:
    """Return a subject with just a common name."""
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])


def _general_name(value: str) -> x509.GeneralName:
    """Turn "203.0.113.7", "ops@example.test", "https://x" or "www.x" into a GeneralName."""
    try:
        return x509.IPAddress(ipaddress.ip_address(value))
    except ValueError:
        pass
    if "://" in value:
        return x509.UniformResourceIdentifier(value)
    if "@" in value:
        return x509.RFC822Name(value)
    return x509.DNSName(value)
