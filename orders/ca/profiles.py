"""Issuance profiles: what a private CA may sign, and why a request is refused.

Domain patterns (`Profile.allowed_domains`), compared after lowercasing and IDNA encoding:

- ``"*"`` allows every name;
- ``"*.x"`` allows any name ending in ``".x"``, however many labels come before it
  (``a.x``, ``a.b.x``, and the wildcard ``*.a.x`` when wildcards are allowed), but not ``x``;
- ``"x"`` allows exactly ``x``.

Email addresses are checked by their domain part and URIs (SPIFFE IDs included) by their
host, against the same patterns; IP addresses are governed by `san_types` alone.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import idna
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID

from inventory.pki.errors import PkiError

USAGES = ("server", "client", "both")
SAN_TYPES = ("dns", "ip", "email", "uri")
SAN_TYPE_NAMES = {"dns": "DNS names", "ip": "IP addresses", "email": "emails", "uri": "URIs"}
MAX_NAMES = 100
MIN_RSA_BITS = 2048
_CURVES = ("secp256r1", "secp384r1", "secp521r1")
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


class CaError(PkiError):
    """The CA refuses: `reasons` holds one sentence per problem, the message joins them."""

    def __init__(self, reasons: str | list[str], prefix: str | None = None) -> None:
        self.reasons = [reasons] if isinstance(reasons, str) else list(reasons)
        message = "; ".join(self.reasons)
        super().__init__(f"{prefix}: {message}" if prefix else message)


@dataclass
class Profile:
    """What one CA may issue: usage, domains, longest validity, SAN types, wildcards."""

    name: str
    usage: str = "server"
    allowed_domains: list[str] = field(default_factory=lambda: ["*"])
    max_days: int = 397
    san_types: set[str] = field(default_factory=lambda: {"dns"})
    allow_wildcards: bool = False

    def __post_init__(self) -> None:
        problems = []
        if self.usage not in USAGES:
            problems.append(f"usage must be one of {', '.join(USAGES)}, not {self.usage!r}")
        unknown = set(self.san_types) - set(SAN_TYPES)
        if unknown:
            problems.append(
                f"unknown SAN types {', '.join(sorted(unknown))}; use {', '.join(SAN_TYPES)}"
            )
        if self.max_days < 1:
            problems.append("the maximum validity must be at least 1 day")
        patterns = []
        for pattern in self.allowed_domains:
            try:
                patterns.append(normalize_pattern(pattern))
            except ValueError as exc:
                problems.append(f"allowed domain “{pattern}”: {exc}")
        if problems:
            raise CaError(problems, prefix=f"Profile “{self.name}” is invalid")
        self.allowed_domains = patterns
        self.san_types = set(self.san_types)

    @property
    def extended_key_usage(self) -> x509.ExtendedKeyUsage:
        """serverAuth, clientAuth, or both, from the usage."""
        oids = {
            "server": [ExtendedKeyUsageOID.SERVER_AUTH],
            "client": [ExtendedKeyUsageOID.CLIENT_AUTH],
            "both": [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        }
        return x509.ExtendedKeyUsage(oids[self.usage])

    def key_usage(self, public_key: PublicKeyTypes) -> x509.KeyUsage:
        """digitalSignature always; keyEncipherment too for RSA server keys (RSA key exchange)."""
        encipher = isinstance(public_key, rsa.RSAPublicKey) and self.usage != "client"
        return x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=encipher,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=False,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        )

    def allows_domain(self, name: str) -> bool:
        """Tell whether a normalised DNS name (or wildcard) matches an allowed pattern."""
        return any(_matches(name, pattern) for pattern in self.allowed_domains)


@dataclass
class IssueRequest:
    """What a certificate should contain; the public key comes from a CSR or a fresh key."""

    public_key: PublicKeyTypes
    subject_cn: str | None = None
    dns: list[str] = field(default_factory=list)
    ips: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    uris: list[str] = field(default_factory=list)
    days: int = 90


@dataclass
class Names:
    """A request's names after normalisation, ready to go into a certificate."""

    subject_cn: str | None
    dns: list[str] = field(default_factory=list)
    ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    uris: list[str] = field(default_factory=list)

    def general_names(self) -> list[x509.GeneralName]:
        """The SAN entries in a stable order: DNS, IP, email, URI."""
        return [
            *(x509.DNSName(name) for name in self.dns),
            *(x509.IPAddress(ip) for ip in self.ips),
            *(x509.RFC822Name(email) for email in self.emails),
            *(x509.UniformResourceIdentifier(uri) for uri in self.uris),
        ]

    def cn_is_hostname(self) -> bool:
        """Whether the common name reads as a host name (OpenSSL then checks it like one)."""
        return self.subject_cn is not None and looks_like_hostname(self.subject_cn)


def check(profile: Profile, request: IssueRequest) -> list[str]:
    """Return why the profile refuses the request, one sentence each; empty means allowed."""
    return evaluate(profile, request)[1]


def evaluate(profile: Profile, request: IssueRequest) -> tuple[Names, list[str]]:
    """Normalise the request's names and check them, its key and its validity."""
    reasons: list[str] = []
    names = Names(subject_cn=(request.subject_cn or "").strip() or None)
    _check_days(profile, request.days, reasons)
    _check_key(request.public_key, reasons)
    _collect_dns(profile, request.dns, names, reasons)
    _collect_ips(request.ips, names, reasons)
    _collect_emails(profile, request.emails, names, reasons)
    _collect_uris(profile, request.uris, names, reasons)
    _check_types(profile, names, reasons)
    _check_subject(profile, names, reasons)
    _check_named(profile, request, reasons)
    return names, reasons


def _check_days(profile: Profile, days: int, reasons: list[str]) -> None:
    if days < 1:
        reasons.append("the validity must be at least 1 day")
    elif days > profile.max_days:
        reasons.append(
            f"{days} days is longer than the maximum of {profile.max_days} days "
            f"of profile “{profile.name}”"
        )


def _check_key(key: PublicKeyTypes, reasons: list[str]) -> None:
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            reasons.append(f"RSA keys must have at least {MIN_RSA_BITS} bits, not {key.key_size}")
    elif isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in _CURVES:
            reasons.append(f"the curve {key.curve.name} is not supported; use P-256 or P-384")
    elif not isinstance(key, ed25519.Ed25519PublicKey):
        reasons.append(f"{type(key).__name__} keys are not supported; use EC, RSA or Ed25519")


def _collect_dns(profile: Profile, raw: list[str], names: Names, reasons: list[str]) -> None:
    for entry in raw:
        try:
            name = normalize_dns(entry)
        except ValueError as exc:
            reasons.append(f"{entry.strip()}: {exc}")
            continue
        if name in names.dns:
            continue
        names.dns.append(name)
        if name.startswith("*.") and not profile.allow_wildcards:
            reasons.append(f"{name} is a wildcard, which profile “{profile.name}” does not allow")
        if not profile.allows_domain(name):
            reasons.append(f"{name} is outside the allowed domains ({_patterns(profile)})")


def _collect_ips(raw: list[str], names: Names, reasons: list[str]) -> None:
    for entry in raw:
        try:
            ip = ipaddress.ip_address(entry.strip())
        except ValueError:
            reasons.append(f"{entry.strip()} is not an IP address")
            continue
        if ip not in names.ips:
            names.ips.append(ip)


def _collect_emails(profile: Profile, raw: list[str], names: Names, reasons: list[str]) -> None:
    for entry in raw:
        local, at, domain = entry.strip().rpartition("@")
        try:
            if not at or not local or any(c.isspace() for c in local) or not local.isascii():
                raise ValueError("not an email address")
            email = f"{local}@{normalize_dns(domain)}"
        except ValueError:
            reasons.append(f"{entry.strip()} is not an email address")
            continue
        if email in names.emails:
            continue
        names.emails.append(email)
        if not profile.allows_domain(email.rpartition("@")[2]):
            reasons.append(f"{email} is outside the allowed domains ({_patterns(profile)})")


def _collect_uris(profile: Profile, raw: list[str], names: Names, reasons: list[str]) -> None:
    for entry in raw:
        uri = entry.strip()
        try:
            parts = urlsplit(uri)
            host = normalize_dns(parts.hostname or "")
            if not parts.scheme or not uri.isascii() or any(c.isspace() for c in uri):
                raise ValueError("not a URI")
        except ValueError:
            reasons.append(f"{uri} is not a URI with a host (like spiffe://example.org/service)")
            continue
        if uri in names.uris:
            continue
        names.uris.append(uri)
        if not profile.allows_domain(host):
            reasons.append(f"{uri} is outside the allowed domains ({_patterns(profile)})")


def _check_types(profile: Profile, names: Names, reasons: list[str]) -> None:
    present = {
        "dns": names.dns,
        "ip": names.ips,
        "email": names.emails,
        "uri": names.uris,
    }
    allowed = ", ".join(SAN_TYPE_NAMES[kind] for kind in SAN_TYPES if kind in profile.san_types)
    for kind, values in present.items():
        if values and kind not in profile.san_types:
            reasons.append(
                f"{SAN_TYPE_NAMES[kind]} are not allowed by profile “{profile.name}” "
                f"(it allows {allowed or 'no subject alternative names'})"
            )
    total = sum(len(values) for values in present.values())
    if total > MAX_NAMES:
        reasons.append(f"{total} names given; a certificate can have at most {MAX_NAMES}")


def _check_subject(profile: Profile, names: Names, reasons: list[str]) -> None:
    cn = names.subject_cn
    if cn is not None and len(cn) > 64:
        reasons.append("the common name is longer than 64 characters")
    if names.cn_is_hostname():
        host = normalize_dns(cn)
        if host not in names.dns and not profile.allows_domain(host):
            reasons.append(
                f"the common name {cn} is outside the allowed domains ({_patterns(profile)})"
            )


def _check_named(profile: Profile, request: IssueRequest, reasons: list[str]) -> None:
    """Judged on what was asked for, so a malformed name is not reported a second time."""
    if profile.usage == "client":
        sans = request.dns or request.ips or request.emails or request.uris
        if not (request.subject_cn or "").strip() and not sans:
            reasons.append("the certificate names no one: give a common name or a SAN")
    elif not request.dns and not request.ips:
        reasons.append("a server certificate needs at least one DNS name or IP address")


def _patterns(profile: Profile) -> str:
    return ", ".join(profile.allowed_domains) or "none"


def _matches(name: str, pattern: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return name.endswith(pattern[1:])
    return name == pattern


def normalize_dns(raw: str) -> str:
    """Lowercase ASCII (IDNA) form of a host name or "*." wildcard; ValueError says why not.

    Single-label names such as ``localhost`` are fine for a private CA.
    """
    name = raw.strip().removesuffix(".")
    if not name:
        raise ValueError("the name is empty")
    wildcard = name.startswith("*.")
    base = name[2:] if wildcard else name
    if "*" in base:
        raise ValueError("a wildcard “*” may only be the whole leftmost label, as in *.example")
    if not base.isascii():
        try:
            base = idna.encode(base, uts46=True).decode()
        except idna.IDNAError as exc:
            raise ValueError(f"not a valid internationalised domain name ({exc})") from None
    base = base.lower()
    if _is_ip(base):
        raise ValueError("this is an IP address, not a DNS name; list it as an IP address")
    if len(base) > 253:
        raise ValueError("the name is longer than 253 characters")
    for label in base.split("."):
        if not _LABEL.match(label):
            raise ValueError(
                f"the label “{label}” may contain only letters, digits and inner hyphens"
            )
    return f"*.{base}" if wildcard else base


def _is_ip(value: str) -> bool:
    if ":" not in value and not value.replace(".", "").isdigit():
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def normalize_pattern(raw: str) -> str:
    """An allowed-domain pattern in normal form ("*", "*.x" or "x"); ValueError says why not."""
    pattern = raw.strip()
    return "*" if pattern == "*" else normalize_dns(pattern)


def looks_like_hostname(value: str) -> bool:
    """A dotted string of valid labels, as OpenSSL decides whether a CN is a host name."""
    if "." not in value.strip(". "):
        return False
    try:
        normalize_dns(value)
    except ValueError:
        return False
    return True
