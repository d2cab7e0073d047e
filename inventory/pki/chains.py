"""Assemble and check certificate chains from leaf to root."""

from __future__ import annotations

import functools
import itertools
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from . import keys as pki_keys
from .keys import is_self_signed, signed_by
from .parse import basic_constraints, parse_bundle, read_extensions

MAX_DEPTH = 10
_NONE = x509.Extensions([])


@dataclass
class ChainResult:
    """A chain ordered leaf → root, and what is wrong with it."""

    chain: list[x509.Certificate]
    complete: bool = False
    trusted: bool = False
    missing_issuer: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def intermediates(self) -> list[x509.Certificate]:
        """Return the links between the leaf and the root (excluding a self-signed root)."""
        end = -1 if self.complete and len(self.chain) > 1 else len(self.chain)
        return self.chain[1:end]


def build_chain(
    leaf: x509.Certificate,
    candidates: list[x509.Certificate],
    roots: list[x509.Certificate],
) -> ChainResult:
    """Follow issuers from the leaf through candidates and roots, verifying each signature."""
    result = ChainResult(chain=[leaf])
    pool = _unique([*roots, *candidates])
    root_keys = {_anchor_key(root) for root in roots}
    current = leaf
    while True:
        if is_self_signed(current):
            result.complete = True
            result.trusted = _anchor_key(current) in root_keys
            return result
        if len(result.chain) >= MAX_DEPTH:
            result.problems.append(f"The chain is longer than {MAX_DEPTH} certificates.")
            return result
        issuer = _find_issuer(current, pool, result)
        if issuer is None:
            return result
        result.chain.append(issuer)
        current = issuer


def _find_issuer(
    cert: x509.Certificate, pool: list[x509.Certificate], result: ChainResult
) -> x509.Certificate | None:
    """Return the verified issuer of cert from the pool, recording why none was usable."""
    in_chain = {_fingerprint(link) for link in result.chain}
    named = [c for c in pool if c.subject == cert.issuer and _key_ids_match(cert, c)]
    verified = [c for c in named if signed_by(cert, c)]
    fresh = [c for c in verified if _fingerprint(c) not in in_chain]
    if fresh:
        return fresh[0]
    label = _label(cert)
    if verified:
        result.problems.append(f"The chain loops back on itself at “{label}”.")
        return None
    for impostor in (c for c in named if _fingerprint(c) not in in_chain):
        result.problems.append(
            f"“{_label(impostor)}” has the issuer's name but did not sign “{label}”."
        )
    result.missing_issuer = cert.issuer.rfc4514_string()
    result.problems.append(f"The issuer of “{label}” was not found: {result.missing_issuer}.")
    return None


def _key_ids_match(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Compare cert's AKI with the issuer's SKI when both are present."""
    aki, ski = _aki(cert), _ski(issuer)
    return aki is None or ski is None or aki == ski


def _aki(cert: x509.Certificate) -> bytes | None:
    """Return the authority key identifier, or None when absent or unreadable."""
    try:
        ext = (read_extensions(cert) or _NONE).get_extension_for_class(x509.AuthorityKeyIdentifier)
    except x509.ExtensionNotFound:
        return None
    return ext.value.key_identifier


def _ski(cert: x509.Certificate) -> bytes | None:
    """Return the subject key identifier, or None when absent or unreadable."""
    try:
        ext = (read_extensions(cert) or _NONE).get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        return None
    return ext.value.digest


def _anchor_key(cert: x509.Certificate) -> tuple[bytes, str]:
    """Identify a trust anchor by name and key, so a re-issued root still counts."""
    try:
        spki = pki_keys.spki_sha256(cert.public_key())
    except ValueError:
        spki = _fingerprint(cert).hex()
    return cert.subject.public_bytes(), spki


def _fingerprint(cert: x509.Certificate) -> bytes:
    """Return the SHA-256 fingerprint used to compare certificates."""
    return cert.fingerprint(hashes.SHA256())


def _unique(certs: list[x509.Certificate]) -> list[x509.Certificate]:
    """Drop repeated certificates, keeping the first."""
    seen: dict[bytes, x509.Certificate] = {}
    for cert in certs:
        seen.setdefault(_fingerprint(cert), cert)
    return list(seen.values())


def _label(cert: x509.Certificate) -> str:
    """Return a short human name for a certificate in messages."""
    try:
        return cert.subject.rfc4514_string() or f"serial {cert.serial_number:x}"
    except ValueError:
        return f"serial {cert.serial_number:x}"


def chain_in_order(certs: list[x509.Certificate]) -> bool:
    """Tell whether each certificate is issued by the one that follows it in the file."""
    for cert, following in itertools.pairwise(certs):
        if cert.issuer != following.subject or not _key_ids_match(cert, following):
            return False
    return True


def is_ca(cert: x509.Certificate) -> bool:
    """Tell whether basicConstraints marks a certificate as a CA."""
    constraints = basic_constraints(read_extensions(cert) or _NONE)
    return bool(constraints and constraints.ca)


@functools.cache
def _certifi_roots() -> tuple[x509.Certificate, ...]:
    """Load the certifi (Mozilla) root store once."""
    data = Path(certifi.where()).read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few old roots have non-positive serial numbers
        return tuple(parse_bundle(data, max_certificates=10_000).certificates)


def certifi_roots() -> list[x509.Certificate]:
    """Return the Mozilla root certificates shipped by certifi."""
    return list(_certifi_roots())
