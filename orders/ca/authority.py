"""A private CA: create roots and intermediates, and sign certificates within profile and limits.

Pure `cryptography`: specs and requests in, certificates out; storing keys, auditing and
permissions belong to the caller. The issuer's own lifetime clamps validity rather than refusing
it: a CA never outlives its parent and a certificate never outlives its CA. The profile and the
name constraints of every CA in the chain are enforced before anything is signed (DNS, IP,
email and URI subtrees, matched the way OpenSSL matches them).
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from inventory.pki.chains import build_chain
from inventory.pki.errors import PkiError
from inventory.pki.keys import generate_private_key, spki_sha256
from inventory.pki.parse import parse_bundle

from .profiles import CaError, IssueRequest, Names, Profile, evaluate, normalize_dns

CA_KEY_KINDS = ("ec-p256", "ec-p384", "rsa-3072", "rsa-4096")
# Tolerates clocks a few minutes behind ours without shortening the validity asked for.
BACKDATE = timedelta(minutes=5)
_Ext = TypeVar("_Ext", bound=x509.ExtensionType)


@dataclass
class CaSpec:
    """What a new CA should look like; subject is an RFC 4514 string ("CN=...,O=...")."""

    subject: str
    key_kind: str = "ec-p256"
    days: int = 3650
    path_length: int | None = None
    permitted_dns: list[str] = field(default_factory=list)
    excluded_dns: list[str] = field(default_factory=list)


@dataclass
class CaMaterial:
    """A CA certificate with its key, and the issuers above it (nearest first, [] for a root)."""

    cert: x509.Certificate
    key: PrivateKeyTypes
    chain: list[x509.Certificate] = field(default_factory=list)

    @property
    def pem(self) -> bytes:
        """The CA certificate as PEM."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def chain_pem(self) -> bytes:
        """The CA certificate and its issuers up to the root, PEM, nearest first."""
        return b"".join(
            c.public_bytes(serialization.Encoding.PEM) for c in [self.cert, *self.chain]
        )

    @property
    def root(self) -> x509.Certificate:
        """The self-signed certificate at the top (the CA itself for a root)."""
        return ([self.cert, *self.chain])[-1]

    # Computed once per CA: issuing in bulk should cost little more than signing.
    @functools.cached_property
    def lasting_problems(self) -> list[str]:
        """Why this CA can never sign, whatever the date: not a CA, or not its key."""
        problems = _ca_problems(self.cert)
        if self.cert.public_key() != self.key.public_key():
            problems.append("its key does not match its certificate")
        return problems

    @functools.cached_property
    def name_constraints(self) -> list[x509.NameConstraints]:
        """The name constraints of this CA and of every CA above it."""
        found = (_extension(cert, x509.NameConstraints) for cert in [self.cert, *self.chain])
        return [constraints for constraints in found if constraints is not None]

    @functools.cached_property
    def key_identifier(self) -> x509.AuthorityKeyIdentifier:
        """The AKI of everything this CA signs."""
        return authority_key_id(self.cert)


# --- Creating CAs ------------------------------------------------------------------------------


def create_root(spec: CaSpec, *, now: datetime | None = None) -> CaMaterial:
    """Generate a key and a self-signed root certificate."""
    subject, path_length, constraints = _check_spec(spec)
    key = generate_private_key(spec.key_kind)
    start = (now or datetime.now(UTC)) - BACKDATE
    builder = _ca_builder(subject, subject, key, path_length, constraints)
    builder = builder.not_valid_before(start).not_valid_after(start + timedelta(days=spec.days))
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
    )
    return CaMaterial(builder.sign(key, signature_hash(key)), key)


def create_intermediate(
    spec: CaSpec, parent: CaMaterial, *, now: datetime | None = None
) -> CaMaterial:
    """Generate a key and an intermediate certificate signed by a console CA."""
    subject, path_length, constraints = _check_spec(spec)
    path_length = _child_path_length(parent.cert, path_length)
    start = (now or datetime.now(UTC)) - BACKDATE
    _check_can_sign(parent, start + BACKDATE)
    key = generate_private_key(spec.key_kind)
    end = min(start + timedelta(days=spec.days), parent.cert.not_valid_after_utc)
    builder = _ca_builder(subject, parent.cert.subject, key, path_length, constraints)
    builder = builder.not_valid_before(start).not_valid_after(end)
    builder = builder.add_extension(authority_key_id(parent.cert), critical=False)
    cert = builder.sign(parent.key, signature_hash(parent.key))
    return CaMaterial(cert, key, [parent.cert, *parent.chain])


def intermediate_csr(spec: CaSpec) -> tuple[bytes, PrivateKeyTypes]:
    """A key and a CSR (PEM) for an intermediate that an external root will sign.

    The CSR asks for the CA extensions (basicConstraints with the path length, keyUsage and the
    name constraints); the external CA decides whether to copy them and sets the validity.
    """
    subject, path_length, constraints = _check_spec(spec)
    key = generate_private_key(spec.key_kind)
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    for extension in _ca_extensions(path_length, constraints):
        builder = builder.add_extension(extension, critical=True)
    csr = builder.sign(key, signature_hash(key))
    return csr.public_bytes(serialization.Encoding.PEM), key


def accept_signed_intermediate(
    csr_key: PrivateKeyTypes,
    cert_pem: bytes | str,
    parent_chain_pem: bytes | str,
    *,
    now: datetime | None = None,
) -> CaMaterial:
    """Take the certificate an external CA signed for our CSR, with that CA's chain.

    Refused when no certificate matches the key, when it is not a CA certificate, when it has
    expired, or when the chain does not lead from it to a self-signed root.
    """
    certs = _read_certificates(cert_pem, "the signed certificate")
    pool = _read_certificates(parent_chain_pem, "the issuing CA chain") if parent_chain_pem else []
    wanted = spki_sha256(csr_key)
    mine = [c for c in certs if spki_sha256(c.public_key()) == wanted]
    if not mine:
        raise CaError(
            "The certificate does not match this CA's key: it was issued for another CSR "
            f"(expected public key SHA-256 {wanted[:16]}…, got {_spki_list(certs)})."
        )
    cert = mine[0]
    problems = _ca_problems(cert)
    if problems:
        raise CaError(
            "The certificate is not a CA certificate (" + "; ".join(problems) + "). Ask the "
            "CA to sign the request as a subordinate CA (basicConstraints CA:TRUE, keyCertSign)."
        )
    moment = now or datetime.now(UTC)
    if cert.not_valid_after_utc <= moment:
        raise CaError(f"The certificate expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC.")
    chain = build_chain(cert, [*pool, *(c for c in certs if c is not cert)], [])
    if not chain.complete or len(chain.chain) < 2:
        missing = chain.missing_issuer or cert.issuer.rfc4514_string()
        raise CaError(
            f"The issuing CA chain does not lead to a root: {missing} is missing. "
            "Upload the issuing CA's certificates up to and including its root."
        )
    return CaMaterial(cert, csr_key, chain.chain[1:])


# --- Issuing -----------------------------------------------------------------------------------


def issue(
    ca: CaMaterial,
    request: IssueRequest,
    profile: Profile,
    *,
    now: datetime | None = None,
    serial: int | None = None,
    crl_url: str | None = None,
) -> x509.Certificate:
    """Sign a certificate for the request, or raise CaError with every reason it is refused."""
    moment = now or datetime.now(UTC)
    names, reasons = evaluate(profile, request)
    reasons += constraint_reasons(ca, names)
    try:
        _check_can_sign(ca, moment)
    except CaError as exc:
        reasons += exc.reasons
    if reasons:
        raise CaError(reasons)
    start = moment - BACKDATE
    end = min(start + timedelta(days=request.days), ca.cert.not_valid_after_utc)
    subject = _leaf_subject(names)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(request.public_key)
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(profile.key_usage(request.public_key), critical=True)
        .add_extension(profile.extended_key_usage, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(request.public_key), False)
        .add_extension(ca.key_identifier, critical=False)
    )
    general_names = names.general_names()
    if general_names:
        # RFC 5280 4.2.1.6: with an empty subject the SAN extension carries the identity.
        builder = builder.add_extension(
            x509.SubjectAlternativeName(general_names), critical=len(subject) == 0
        )
    if crl_url:
        builder = builder.add_extension(_crl_distribution_point(crl_url), critical=False)
    return builder.sign(ca.key, signature_hash(ca.key))


def constraint_reasons(ca: CaMaterial, names: Names) -> list[str]:
    """Why the name constraints of the CA or any CA above it forbid these names."""
    reasons: list[str] = []
    checked = [("DNS", name) for name in names.dns]
    if not names.dns and names.cn_is_hostname():
        # OpenSSL checks a host-like CN against DNS constraints when there is no DNS SAN.
        checked.append(("DNS", normalize_dns(names.subject_cn or "")))
    checked += [("IP", ip) for ip in names.ips]
    checked += [("email", email) for email in names.emails]
    checked += [("URI", uri) for uri in names.uris]
    for constraints in ca.name_constraints:
        for kind, value in checked:
            reason = _constraint_reason(kind, value, constraints)
            if reason and reason not in reasons:
                reasons.append(reason)
    return reasons


def signature_hash(key: PrivateKeyTypes) -> hashes.HashAlgorithm | None:
    """SHA-384 for P-384, SHA-512 for P-521, none for EdDSA, SHA-256 otherwise."""
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA512() if key.curve.key_size > 384 else hashes.SHA384()
    return hashes.SHA256()


# --- Helpers -----------------------------------------------------------------------------------


def _check_spec(spec: CaSpec) -> tuple[x509.Name, int | None, x509.NameConstraints | None]:
    """Validate a spec; return its subject, path length and name constraints."""
    problems: list[str] = []
    subject = x509.Name([])
    try:
        subject = x509.Name.from_rfc4514_string(spec.subject.strip())
    except ValueError as exc:
        detail = f" ({exc})" if str(exc) else " (write it like CN=Acme Internal Root,O=Acme)"
        problems.append(f"the subject “{spec.subject}” is not a distinguished name{detail}")
    if not problems and len(subject) == 0:
        problems.append("the subject is empty; write it like CN=Acme Internal Root,O=Acme")
    if spec.key_kind not in CA_KEY_KINDS:
        problems.append(f"key type must be one of {', '.join(CA_KEY_KINDS)}, not {spec.key_kind}")
    if spec.days < 1:
        problems.append("the validity must be at least 1 day")
    if spec.path_length is not None and spec.path_length < 0:
        problems.append("the path length cannot be negative")
    permitted = _constraint_names(spec.permitted_dns, "permitted", problems)
    excluded = _constraint_names(spec.excluded_dns, "excluded", problems)
    if problems:
        raise CaError(problems, prefix="The CA cannot be created")
    constraints = None
    if permitted or excluded:
        constraints = x509.NameConstraints(
            permitted_subtrees=[x509.DNSName(n) for n in permitted] or None,
            excluded_subtrees=[x509.DNSName(n) for n in excluded] or None,
        )
    return subject, spec.path_length, constraints


def _constraint_names(raw: list[str], which: str, problems: list[str]) -> list[str]:
    """DNS subtrees: "example.com" (it and below) or ".example.com" (only below)."""
    names: list[str] = []
    for entry in raw:
        value = entry.strip()
        if not value:
            continue
        if "*" in value:
            problems.append(
                f"{which} DNS subtree “{value}”: write a domain suffix without “*” "
                "(internal.example covers it and every name below it)"
            )
            continue
        try:
            name = ("." if value.startswith(".") else "") + normalize_dns(value.lstrip("."))
        except ValueError as exc:
            problems.append(f"{which} DNS subtree “{value}”: {exc}")
            continue
        if name not in names:
            names.append(name)
    return names


def _ca_extensions(
    path_length: int | None, constraints: x509.NameConstraints | None
) -> list[x509.ExtensionType]:
    extensions: list[x509.ExtensionType] = [
        x509.BasicConstraints(ca=True, path_length=path_length),
        x509.KeyUsage(
            digital_signature=False,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        ),
    ]
    if constraints is not None:
        extensions.append(constraints)
    return extensions


def _ca_builder(
    subject: x509.Name,
    issuer: x509.Name,
    key: PrivateKeyTypes,
    path_length: int | None,
    constraints: x509.NameConstraints | None,
) -> x509.CertificateBuilder:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    for extension in _ca_extensions(path_length, constraints):
        builder = builder.add_extension(extension, critical=True)
    return builder


def _child_path_length(parent: x509.Certificate, wanted: int | None) -> int | None:
    """A parent limited to n CAs below it gives at most n-1; "unlimited" becomes n-1."""
    constraints = _extension(parent, x509.BasicConstraints)
    limit = constraints.path_length if constraints else None
    if limit is None:
        return wanted
    if limit == 0:
        raise CaError(
            f"{parent.subject.rfc4514_string()} has path length 0: it cannot sign another CA"
        )
    if wanted is not None and wanted > limit - 1:
        raise CaError(
            f"the path length can be at most {limit - 1} under "
            f"{parent.subject.rfc4514_string()} (its own path length is {limit})"
        )
    return limit - 1 if wanted is None else wanted


def _check_can_sign(ca: CaMaterial, moment: datetime) -> None:
    problems = list(ca.lasting_problems)
    if ca.cert.not_valid_after_utc <= moment:
        problems.append(f"it expired on {ca.cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
    elif ca.cert.not_valid_before_utc > moment:
        problems.append(f"it is valid only from {ca.cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    if problems:
        name = ca.cert.subject.rfc4514_string()
        raise CaError([f"the CA {name} cannot sign: {problem}" for problem in problems])


def _ca_problems(cert: x509.Certificate) -> list[str]:
    problems = []
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is None or not constraints.ca:
        problems.append("basicConstraints does not say CA:TRUE")
    usage = _extension(cert, x509.KeyUsage)
    if usage is not None and not usage.key_cert_sign:
        problems.append("keyUsage lacks keyCertSign")
    return problems


def _extension(cert: x509.Certificate, kind: type[_Ext]) -> _Ext | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def authority_key_id(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """The AKI for something the issuer signs: its SKI when it has one, else from its key."""
    ski = _extension(issuer, x509.SubjectKeyIdentifier)
    if ski is not None:
        return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.public_key())


def _crl_distribution_point(url: str) -> x509.CRLDistributionPoints:
    point = x509.DistributionPoint(
        full_name=[x509.UniformResourceIdentifier(url)],
        relative_name=None,
        reasons=None,
        crl_issuer=None,
    )
    return x509.CRLDistributionPoints([point])


def _leaf_subject(names: Names) -> x509.Name:
    """CN = the requested common name, else the first DNS name that fits in 64 characters."""
    common_name = names.subject_cn or next((n for n in names.dns if len(n) <= 64), None)
    if common_name is None:
        return x509.Name([])
    return x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)])


def _read_certificates(data: bytes | str, what: str) -> list[x509.Certificate]:
    raw = data.encode() if isinstance(data, str) else data
    try:
        certs = parse_bundle(raw).certificates
    except PkiError as exc:
        raise CaError(f"{what[:1].upper()}{what[1:]} could not be read: {exc}") from None
    if not certs:
        raise CaError(f"{what[:1].upper()}{what[1:]} contains no certificate.")
    return certs


def _spki_list(certs: list[x509.Certificate]) -> str:
    return ", ".join(spki_sha256(c.public_key())[:16] + "…" for c in certs)


# --- Name constraint matching (RFC 5280 4.2.1.10, as OpenSSL's nc_match does it) ---------------


def _constraint_reason(kind: str, value: object, constraints: x509.NameConstraints) -> str | None:
    shown = str(value)
    excluded = [s for s in constraints.excluded_subtrees or [] if _same_kind(kind, s)]
    for subtree in excluded:
        if _within(kind, value, subtree):
            return f"{shown} is excluded by the CA's name constraints ({_subtree(subtree)})"
    permitted = [s for s in constraints.permitted_subtrees or [] if _same_kind(kind, s)]
    if permitted and not any(_within(kind, value, s) for s in permitted):
        listed = ", ".join(_subtree(s) for s in permitted)
        return f"{shown} is outside the CA's name constraints (permitted: {listed})"
    return None


_KINDS = {
    "DNS": x509.DNSName,
    "IP": x509.IPAddress,
    "email": x509.RFC822Name,
    "URI": x509.UniformResourceIdentifier,
}


def _same_kind(kind: str, subtree: x509.GeneralName) -> bool:
    return isinstance(subtree, _KINDS[kind])


def _subtree(subtree: x509.GeneralName) -> str:
    return str(subtree.value)


def _within(kind: str, value: object, subtree: x509.GeneralName) -> bool:
    if kind == "IP":
        network = subtree.value
        return isinstance(network, ipaddress.IPv4Network | ipaddress.IPv6Network) and (
            value.version == network.version and value in network  # type: ignore[attr-defined]
        )
    base = str(subtree.value).lower()
    if kind == "DNS":
        return _dns_within(str(value).lower(), base)
    if kind == "email":
        mailbox = str(value).lower()
        if "@" in base:
            return mailbox == base
        return _host_within(mailbox.rpartition("@")[2], base)
    host = (urlsplit(str(value)).hostname or "").lower()
    return _host_within(host, base)


def _dns_within(name: str, base: str) -> bool:
    """Zero or more labels may be added on the left; a leading dot in base requires one."""
    if not base:
        return True
    if len(name) < len(base) or not name.endswith(base):
        return False
    return len(name) == len(base) or base.startswith(".") or name[-len(base) - 1] == "."


def _host_within(host: str, base: str) -> bool:
    """Email and URI subtrees: ".x" means any host below x, "x" means exactly x."""
    if base.startswith("."):
        return host.endswith(base)
    return host == base
