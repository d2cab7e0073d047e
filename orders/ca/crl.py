"""Certificate revocation lists for a private CA."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .authority import CaMaterial, authority_key_id, signature_hash
from .profiles import CaError

# remove_from_crl belongs to delta CRLs, which the console does not publish.
REASONS = tuple(
    flag.name for flag in x509.ReasonFlags if flag is not x509.ReasonFlags.remove_from_crl
)


@dataclass
class RevokedEntry:
    """One revoked certificate: its serial, when, and why (a ReasonFlags name)."""

    serial: int
    revoked_at: datetime
    reason: str = "unspecified"


def reason_flag(name: str) -> x509.ReasonFlags:
    """ "key_compromise", "Key compromise", "keyCompromise" → ReasonFlags.key_compromise."""
    key = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name.strip())
    key = re.sub(r"[\s-]+", "_", key).lower()
    if key not in REASONS:
        raise CaError(f"unknown revocation reason “{name}”; use one of {', '.join(REASONS)}")
    return x509.ReasonFlags[key]


def build_crl(
    ca: CaMaterial,
    revoked: list[RevokedEntry],
    *,
    this_update: datetime,
    next_update: datetime,
    crl_number: int,
) -> x509.CertificateRevocationList:
    """Sign a CRL listing the revoked serials, with CRL number and authority key identifier."""
    if next_update <= this_update:
        raise CaError("the next update of a CRL must come after this update")
    if crl_number < 0:
        raise CaError("the CRL number cannot be negative")
    usage = _key_usage(ca.cert)
    if usage is not None and not usage.crl_sign:
        raise CaError(f"the CA {ca.cert.subject.rfc4514_string()} may not sign CRLs (no cRLSign)")
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(crl_number), critical=False)
        .add_extension(authority_key_id(ca.cert), critical=False)
    )
    for entry in revoked:
        flag = reason_flag(entry.reason)
        item = (
            x509.RevokedCertificateBuilder()
            .serial_number(entry.serial)
            .revocation_date(entry.revoked_at)
        )
        # RFC 5280 5.3.1: leave the reason out rather than say "unspecified".
        if flag is not x509.ReasonFlags.unspecified:
            item = item.add_extension(x509.CRLReason(flag), critical=False)
        builder = builder.add_revoked_certificate(item.build())
    return builder.sign(ca.key, signature_hash(ca.key))


def crl_pem(crl: x509.CertificateRevocationList) -> bytes:
    """The CRL as PEM ("X509 CRL")."""
    return crl.public_bytes(serialization.Encoding.PEM)


def crl_der(crl: x509.CertificateRevocationList) -> bytes:
    """The CRL as DER, as served at a CRL distribution point."""
    return crl.public_bytes(serialization.Encoding.DER)


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
