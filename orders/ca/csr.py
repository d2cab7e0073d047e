"""Certificate signing requests: build one for a key, or read one a user supplies."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from cryptography.x509.oid import NameOID

from .authority import signature_hash
from .profiles import CaError, IssueRequest, normalize_dns

_PEM_LABELS = (b"-----BEGIN CERTIFICATE REQUEST-----", b"-----BEGIN NEW CERTIFICATE REQUEST-----")


@dataclass
class CsrInfo:
    """What a CSR asks for: its key, common name and subject alternative names."""

    public_key: PublicKeyTypes
    subject_cn: str | None
    dns: list[str]
    ips: list[str]
    signature_valid: bool
    emails: list[str] = field(default_factory=list)
    uris: list[str] = field(default_factory=list)
    subject: str = ""

    def issue_request(self, days: int) -> IssueRequest:
        """The request to hand to `authority.issue` (the profile still decides)."""
        return IssueRequest(
            public_key=self.public_key,
            subject_cn=self.subject_cn,
            dns=list(self.dns),
            ips=list(self.ips),
            emails=list(self.emails),
            uris=list(self.uris),
            days=days,
        )


def build_csr(key: PrivateKeyTypes, dns: list[str], subject_cn: str | None = None) -> bytes:
    """A PEM CSR for the key: CN = subject_cn or the first name, every name as a DNS SAN."""
    names: list[str] = []
    for entry in dns:
        try:
            name = normalize_dns(entry)
        except ValueError as exc:
            raise CaError(f"{entry.strip()}: {exc}") from None
        if name not in names:
            names.append(name)
    common_name = subject_cn or next((n for n in names if len(n) <= 64), None)
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else []
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes))
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
    csr = builder.sign(key, signature_hash(key))
    return csr.public_bytes(serialization.Encoding.PEM)


def read_csr(data: bytes | str, *, require_valid_signature: bool = True) -> CsrInfo:
    """Read a PEM or DER CSR; refuse it when its signature does not verify.

    With require_valid_signature=False a bad signature is reported in `signature_valid`
    instead, so a page can show what the broken request contained.
    """
    csr = _load(data.encode() if isinstance(data, str) else data)
    try:
        public_key = csr.public_key()
        valid = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CaError(f"The CSR's public key cannot be used: {exc}") from None
    if not valid and require_valid_signature:
        raise CaError(
            "The CSR's signature does not verify: it was altered after signing or was not "
            "signed with the key it contains. Generate a new CSR."
        )
    sans = _sans(csr)
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return CsrInfo(
        public_key=public_key,
        subject_cn=str(cns[0].value) if cns else None,
        dns=sans.get_values_for_type(x509.DNSName) if sans else [],
        ips=[str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] if sans else [],
        signature_valid=valid,
        emails=sans.get_values_for_type(x509.RFC822Name) if sans else [],
        uris=sans.get_values_for_type(x509.UniformResourceIdentifier) if sans else [],
        subject=csr.subject.rfc4514_string(),
    )


def _load(data: bytes) -> x509.CertificateSigningRequest:
    # Only text is stripped: DER may well end in a byte that looks like whitespace.
    pem = data.lstrip().startswith(b"-----BEGIN")
    if pem:
        text = data.strip()
        starts = [i for i in (text.find(label) for label in _PEM_LABELS) if i >= 0]
        if not starts:
            raise CaError("This is not a certificate signing request (no CSR PEM block).")
        data = text[min(starts) :]
    try:
        return x509.load_pem_x509_csr(data) if pem else x509.load_der_x509_csr(data)
    except ValueError:
        raise CaError(
            "The CSR could not be read: it is truncated or not a certificate signing request."
        ) from None


def _sans(csr: x509.CertificateSigningRequest) -> x509.SubjectAlternativeName | None:
    try:
        return csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    except (ValueError, x509.DuplicateExtension) as exc:
        raise CaError(f"The CSR's extensions are malformed: {exc}") from None
