"""Throwaway CAs and leaf certificates for tests, made with `cryptography`."""

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class CertKey:
    """A certificate, its private key and the intermediates to serve after it."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    chain: list[x509.Certificate] = field(default_factory=list)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def fullchain_pem(self) -> bytes:
        return b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in [self.cert, *self.chain]
        )

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def sha256(self) -> str:
        """Lowercase hex SHA-256 of the DER certificate (what a TLS probe reports)."""
        return self.cert.fingerprint(hashes.SHA256()).hex()

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """Write `stem.pem` (full chain) and `stem.key`; return both paths."""
        directory.mkdir(parents=True, exist_ok=True)
        cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
        cert_path.write_bytes(self.fullchain_pem)
        key_path.write_bytes(self.key_pem)
        key_path.chmod(0o600)
        return cert_path, key_path

    def write_combined(self, path: Path) -> Path:
        """Full chain followed by the key in one file, the way HAProxy's `crt` wants it."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.fullchain_pem + self.key_pem)
        path.chmod(0o600)
        return path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _validity(builder: x509.CertificateBuilder, days: int) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return builder.not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(
        now + dt.timedelta(days=days)
    )


def _ca_extensions(
    builder: x509.CertificateBuilder, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    return (
        builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def make_ca(common_name: str = "CertConsole Test Root CA", *, days: int = 30) -> CertKey:
    """A self-signed root CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
    )
    builder = _ca_extensions(_validity(builder, days), key.public_key())
    return CertKey(builder.sign(key, hashes.SHA256()), key)


def _served_chain(issuer: CertKey) -> list[x509.Certificate]:
    if issuer.cert.subject == issuer.cert.issuer:
        return []  # roots are not served
    return [issuer.cert, *issuer.chain]


def _issued_by(issuer: CertKey) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .issuer_name(issuer.cert.subject)
        .serial_number(x509.random_serial_number())
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    )


def make_intermediate(
    issuer: CertKey, common_name: str = "CertConsole Test Intermediate CA", *, days: int = 30
) -> CertKey:
    """A CA certificate signed by `issuer`."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _issued_by(issuer).subject_name(_name(common_name)).public_key(key.public_key())
    builder = _ca_extensions(_validity(builder, days), key.public_key())
    return CertKey(builder.sign(issuer.key, hashes.SHA256()), key, _served_chain(issuer))


def make_leaf(
    issuer: CertKey,
    names: Sequence[str],
    *,
    ips: Sequence[str] = (),
    days: int = 30,
    common_name: str | None = None,
) -> CertKey:
    """A TLS server certificate for DNS `names` (and IP addresses `ips`) signed by `issuer`."""
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    builder = (
        _issued_by(issuer)
        .subject_name(_name(common_name or (names[0] if names else ips[0])))
        .public_key(key.public_key())
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    cert = _validity(builder, days).sign(issuer.key, hashes.SHA256())
    return CertKey(cert, key, _served_chain(issuer))
