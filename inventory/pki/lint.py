"""Findings about a leaf certificate and its chain that an operator should act on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

from .chains import ChainResult, chain_in_order, is_ca
from .keys import is_self_signed
from .parse import read_extensions

# CA/Browser Forum ballot SC-081: maximum validity by issue date, newest rule first.
VALIDITY_LIMITS = (
    (datetime(2029, 3, 15, tzinfo=UTC), 47),
    (datetime(2027, 3, 15, tzinfo=UTC), 100),
    (datetime(2026, 3, 15, tzinfo=UTC), 200),
)
VALIDITY_LIMIT_BEFORE_SC081 = 398
MIN_RSA_BITS = 2048
MIN_EC_BITS = 256


@dataclass(frozen=True)
class Finding:
    """One lint result; severity is "error", "warning" or "info"."""

    code: str
    severity: str
    message: str


def lint(
    leaf: x509.Certificate,
    chain: ChainResult,
    *,
    now: datetime,
    file_order: list[x509.Certificate] | None = None,
) -> list[Finding]:
    """Check a leaf, its built chain and (optionally) the order certificates had in the file."""
    links = [leaf, *chain.chain[1:]]
    root = chain.chain[-1] if chain.complete and len(chain.chain) > 1 else None
    findings: list[Finding] = []
    for position, cert in enumerate(links):
        name = _describe_link(cert, position, cert is root)
        findings += _weak_key(cert, name)
        if cert is not root:
            findings += _weak_signature(cert, name)
        findings += _dates(cert, name, now)
    findings += _validity_too_long(leaf)
    findings += _no_san(leaf)
    findings += _chain_incomplete(chain)
    if file_order and len(file_order) > 1 and not chain_in_order(file_order):
        findings.append(
            Finding(
                "chain_out_of_order",
                "warning",
                "The certificates in the file are not in leaf → root order; "
                "some clients reject a chain sent out of order.",
            )
        )
    return findings


def validity_limit_days(issued: datetime) -> int:
    """Return the longest validity (in days) a public CA may use for a leaf issued then."""
    for start, days in VALIDITY_LIMITS:
        if issued >= start:
            return days
    return VALIDITY_LIMIT_BEFORE_SC081


def _describe_link(cert: x509.Certificate, position: int, is_root: bool) -> str:
    """Name a chain link in messages: "The certificate", "The intermediate “R3”"."""
    if position == 0:
        return "The certificate"
    role = "root" if is_root else "intermediate"
    return f"The {role} “{_short_name(cert)}”"


def _short_name(cert: x509.Certificate) -> str:
    """Return the common name, or the whole subject when there is none."""
    try:
        names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        return str(names[0].value) if names else cert.subject.rfc4514_string()
    except ValueError:
        return f"serial {cert.serial_number:x}"


def _weak_key(cert: x509.Certificate, name: str) -> list[Finding]:
    """Flag RSA or DSA keys under 2048 bits and EC keys under 256 bits."""
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return []
    if isinstance(key, rsa.RSAPublicKey | dsa.DSAPublicKey) and key.key_size < MIN_RSA_BITS:
        kind = "RSA" if isinstance(key, rsa.RSAPublicKey) else "DSA"
        return [_weak_key_finding(name, f"{kind} key of {key.key_size} bits", MIN_RSA_BITS)]
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.key_size < MIN_EC_BITS:
        return [_weak_key_finding(name, f"EC key of {key.curve.key_size} bits", MIN_EC_BITS)]
    return []


def _weak_key_finding(name: str, what: str, minimum: int) -> Finding:
    """Build the weak_key finding."""
    return Finding("weak_key", "error", f"{name} has a weak {what} (minimum {minimum}).")


def _weak_signature(cert: x509.Certificate, name: str) -> list[Finding]:
    """Flag SHA-1 (or MD5) signatures, which clients no longer accept."""
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return []
    if isinstance(algorithm, hashes.SHA1 | hashes.MD5):
        label = "SHA-1" if isinstance(algorithm, hashes.SHA1) else "MD5"
        return [
            Finding(
                "sha1_signature",
                "error",
                f"{name} is signed with {label}, which browsers and TLS clients reject.",
            )
        ]
    return []


def _dates(cert: x509.Certificate, name: str, now: datetime) -> list[Finding]:
    """Flag a link that has expired or is not valid yet."""
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now > not_after:
        days = (now - not_after).days
        when = f"{not_after:%Y-%m-%d %H:%M} UTC ({_days(days)} ago)"
        return [Finding("expired", "error", f"{name} expired on {when}.")]
    if now < not_before:
        days = (not_before - now).days
        when = f"{not_before:%Y-%m-%d %H:%M} UTC (in {_days(days)})"
        return [Finding("not_yet_valid", "error", f"{name} is not valid before {when}.")]
    return []


def _days(count: int) -> str:
    """Format a day count: "1 day", "3 days"."""
    return "1 day" if count == 1 else f"{count} days"


def _validity_too_long(leaf: x509.Certificate) -> list[Finding]:
    """Flag a leaf valid longer than a publicly trusted CA may issue (SC-081)."""
    if is_ca(leaf) or is_self_signed(leaf):
        return []
    issued = leaf.not_valid_before_utc
    limit = validity_limit_days(issued)
    length = leaf.not_valid_after_utc - issued
    if length <= timedelta(days=limit):
        return []
    message = (
        f"The certificate is valid for {length.days} days; publicly trusted certificates "
        f"issued on {issued:%Y-%m-%d} may be valid for at most {limit} days "
        "(CA/Browser Forum SC-081). A private CA may issue it."
    )
    return [Finding("validity_too_long", "warning", message)]


def _no_san(leaf: x509.Certificate) -> list[Finding]:
    """Flag a non-CA leaf without DNS or IP subject alternative names."""
    if is_ca(leaf):
        return []
    extensions = read_extensions(leaf)
    if extensions is None:
        return []  # unreadable extensions are reported by describe()
    try:
        sans = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        sans = x509.SubjectAlternativeName([])
    if sans.get_values_for_type(x509.DNSName) or sans.get_values_for_type(x509.IPAddress):
        return []
    message = (
        "The certificate has no DNS or IP subject alternative name; "
        "browsers ignore the common name and will reject it."
    )
    return [Finding("no_san", "error", message)]


def _chain_incomplete(chain: ChainResult) -> list[Finding]:
    """Flag a chain that stops before a self-signed root."""
    if chain.complete:
        return []
    if chain.missing_issuer is None:
        reason = chain.problems[0] if chain.problems else "The chain does not reach a root."
        return [Finding("chain_incomplete", "error", reason)]
    if len(chain.chain) == 1:
        message = (
            f"The issuing CA certificate is missing: {chain.missing_issuer}. "
            "Upload the intermediate certificate so servers can send the full chain."
        )
        return [Finding("chain_incomplete", "error", message)]
    message = (
        f"The root certificate is not known: {chain.missing_issuer}. "
        "Clients that do not trust it will reject the chain; add it if it is a private CA."
    )
    return [Finding("chain_incomplete", "warning", message)]
