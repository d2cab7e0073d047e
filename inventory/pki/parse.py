"""Read certificates and private keys from whatever file a user uploads, and describe them."""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import NameOID

from . import keys as pki_keys
from .errors import PkiError
from .keys import is_self_signed

NOTHING_RECOGNISED = (
    "Not a certificate or key: no PEM block, DER, PKCS#7 or PKCS#12 structure was recognised."
)

_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9][A-Z0-9 #/_.-]{0,60})-----")
_CERT_LABELS = {"CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"}
_PKCS7_LABELS = {"PKCS7", "PKCS #7 SIGNED DATA", "CMS"}
_KEY_LABELS = {"PRIVATE KEY", "ENCRYPTED PRIVATE KEY"} | {
    f"{kind} PRIVATE KEY" for kind in ("RSA", "EC", "DSA")
}
_IGNORED_LABELS = {
    "EC PARAMETERS": "",
    "DH PARAMETERS": "Diffie-Hellman parameters",
    "CERTIFICATE REQUEST": "a certificate signing request",
    "NEW CERTIFICATE REQUEST": "a certificate signing request",
    "PUBLIC KEY": "a public key",
    "RSA PUBLIC KEY": "a public key",
    "X509 CRL": "a certificate revocation list",
    "OPENSSH PRIVATE KEY": "an OpenSSH private key (convert it to PKCS#8 PEM first)",
}
_OID_PKCS7_SIGNED = bytes.fromhex("06092a864886f70d010702")
_LOAD_ERRORS = (ValueError, x509.InvalidVersion)
EXTENSION_ERRORS = (ValueError, x509.DuplicateExtension, UnsupportedAlgorithm)
_SAN_KINDS = {
    x509.DNSName: "dns",
    x509.IPAddress: "ip",
    x509.RFC822Name: "email",
    x509.UniformResourceIdentifier: "uri",
}


@dataclass
class ParsedBundle:
    """Everything found in one uploaded file, in file order, without duplicates."""

    certificates: list[x509.Certificate] = field(default_factory=list)
    keys: list[PrivateKeyTypes] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class San:
    """One subject alternative name; kind is "dns", "ip", "email" or "uri"."""

    kind: str
    value: str


@dataclass
class CertInfo:
    """The facts about one certificate that the console stores and shows."""

    sha256: str
    sha1: str
    serial: str
    subject: str
    issuer: str
    common_name: str | None
    sans: list[San]
    not_before: datetime
    not_after: datetime
    key_type: str
    key_size: int
    signature_algorithm: str
    spki_sha256: str
    is_ca: bool
    ski: str | None
    aki: str | None
    self_signed: bool
    problems: list[str] = field(default_factory=list)

    @property
    def san_strings(self) -> list[str]:
        """Return the SAN values as plain strings, in certificate order."""
        return [san.value for san in self.sans]


# --- Reading files --------------------------------------------------------------------------


def parse_bundle(
    data: bytes, password: bytes | None = None, *, max_certificates: int = 500
) -> ParsedBundle:
    """Read every certificate and private key from PEM, DER, PKCS#7 or PKCS#12 bytes."""
    data = _strip_bom(data)
    if not data.strip():
        raise PkiError("The file is empty.")
    bundle = ParsedBundle()
    if b"-----BEGIN " in data:
        _parse_pem(data, password, bundle, max_certificates)
    else:
        _parse_der(_unwrap_base64(data), password, bundle)
    _check_count(len(bundle.certificates), max_certificates)
    for number, cert in enumerate(bundle.certificates, start=1):
        _check_readable(cert, number)
    _deduplicate(bundle)
    if not bundle.certificates and not bundle.keys:
        if bundle.warnings:
            raise PkiError("No certificate or private key found. " + " ".join(bundle.warnings))
        raise PkiError(NOTHING_RECOGNISED)
    return bundle


def _strip_bom(data: bytes) -> bytes:
    """Drop a UTF-8 byte order mark and decode UTF-16 text that Windows tools write."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:]
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16").encode("ascii", "replace")
        except UnicodeDecodeError:
            return data
    return data


def _check_readable(cert: x509.Certificate, number: int) -> None:
    """Refuse a certificate whose names or dates cannot be read (they are parsed lazily)."""
    parts = {
        "subject": lambda: cert.subject,
        "issuer": lambda: cert.issuer,
        "validity dates": lambda: (cert.not_valid_before_utc, cert.not_valid_after_utc),
        "serial number": lambda: cert.serial_number,
    }
    for part, read in parts.items():
        try:
            read()
        except ValueError:
            raise PkiError(
                f"The data is truncated or corrupted: certificate #{number} has an unreadable "
                f"{part}."
            ) from None


def _check_count(count: int, limit: int) -> None:
    """Refuse files with more certificates than the limit."""
    if count > limit:
        raise PkiError(f"Too many certificates in one file ({count}; the limit is {limit}).")


def _deduplicate(bundle: ParsedBundle) -> None:
    """Keep the first copy of each certificate and key, and say how many were dropped."""
    seen_certs: dict[bytes, x509.Certificate] = {}
    for cert in bundle.certificates:
        seen_certs.setdefault(cert.fingerprint(hashes.SHA256()), cert)
    seen_keys: dict[bytes, PrivateKeyTypes] = {}
    for key in bundle.keys:
        seen_keys.setdefault(pki_keys.private_key_pkcs8_der(key), key)
    _note_dropped(bundle, len(bundle.certificates) - len(seen_certs), "certificate")
    _note_dropped(bundle, len(bundle.keys) - len(seen_keys), "private key")
    bundle.certificates = list(seen_certs.values())
    bundle.keys = list(seen_keys.values())


def _note_dropped(bundle: ParsedBundle, count: int, noun: str) -> None:
    """Warn that duplicates were dropped: "Ignored 2 duplicate certificates."."""
    if count:
        bundle.warnings.append(f"Ignored {count} duplicate {noun}{'' if count == 1 else 's'}.")


# --- PEM --------------------------------------------------------------------------------------


def _parse_pem(data: bytes, password: bytes | None, bundle: ParsedBundle, limit: int) -> None:
    """Read every PEM block, ignoring text around them (comments, Bag Attributes)."""
    blocks = list(_pem_blocks(data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")))
    _check_count(sum(label in _CERT_LABELS for label, _, _ in blocks), limit)
    for number, (label, headers, body) in enumerate(blocks, start=1):
        where = f"the {label} block (#{number})"
        der = _decode_body(body, where)
        if label in _CERT_LABELS:
            bundle.certificates.append(_load_certificate(_first_tlv(der, where), where))
        elif label in _PKCS7_LABELS:
            bundle.certificates.extend(_load_pkcs7(der, bundle))
        elif label in _KEY_LABELS:
            pem = _rebuild_pem(label, headers, der)
            bundle.keys.append(pki_keys.load_private_key(pem, password))
        elif label in _IGNORED_LABELS:
            if _IGNORED_LABELS[label]:
                bundle.warnings.append(f"Ignored {_IGNORED_LABELS[label]} ({label} block).")
        else:
            bundle.warnings.append(f"Ignored an unrecognised PEM block ({label}).")


def _pem_blocks(text: bytes) -> Iterable[tuple[str, list[bytes], bytes]]:
    """Yield (label, header lines, base64 body) for each BEGIN/END pair."""
    pos = 0
    while match := _BEGIN.search(text, pos):
        label = match.group(1).decode("ascii")
        end_marker = f"-----END {label}-----".encode()
        end = text.find(end_marker, match.end())
        next_begin = text.find(b"-----BEGIN ", match.end())
        if end < 0 or 0 <= next_begin < end:
            raise PkiError(
                f"The data is truncated or corrupted: the {label} block has no END line."
            )
        headers, body = _split_headers(text[match.end() : end])
        yield label, headers, body
        pos = end + len(end_marker)


def _split_headers(block: bytes) -> tuple[list[bytes], bytes]:
    """Separate RFC 1421 headers (Proc-Type, DEK-Info) from the base64 body."""
    lines = [line.strip() for line in block.split(b"\n") if line.strip()]
    headers = [line for line in lines if b":" in line]
    return headers, b"".join(line for line in lines if b":" not in line)


def _decode_body(body: bytes, where: str) -> bytes:
    """Decode a PEM body strictly, so corruption is reported instead of half-read."""
    try:
        der = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise PkiError(
            f"The data is truncated or corrupted: {where} is not valid base64."
        ) from None
    if not der:
        raise PkiError(f"The data is truncated or corrupted: {where} is empty.")
    return der


def _rebuild_pem(label: str, headers: list[bytes], der: bytes) -> bytes:
    """Write a clean PEM block (LF endings, 64-column base64) for cryptography's loader."""
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    head = b"\n".join(headers) + b"\n\n" if headers else b""
    return (
        f"-----BEGIN {label}-----\n".encode()
        + head
        + b"\n".join(lines)
        + f"\n-----END {label}-----\n".encode()
    )


# --- DER, PKCS#7, PKCS#12 ---------------------------------------------------------------------


def _unwrap_base64(data: bytes) -> bytes:
    """Accept bare base64 of DER (no PEM armour), as some portals hand out."""
    if not data.isascii():
        return data
    try:
        der = base64.b64decode(b"".join(data.split()), validate=True)
    except (binascii.Error, ValueError):
        return data
    return der if der[:1] == b"\x30" else data


def _parse_der(der: bytes, password: bytes | None, bundle: ParsedBundle) -> None:
    """Identify a binary structure by its shape and load it."""
    if der[:1] != b"\x30" or _is_text(der):
        raise PkiError(NOTHING_RECOGNISED)
    end = _tlv_end(der, 0, "the file")
    if der[end:].strip(b"\x00\r\n\t "):
        bundle.warnings.append("Extra data after the binary structure was ignored.")
    der = der[:end]
    children = _children(der)
    tags = [child[:1] for child in children]
    if tags[:2] == [b"\x02", b"\x30"] and children[0] == b"\x02\x01\x03":
        _load_pkcs12(der, password, bundle)
    elif children[:1] == [_OID_PKCS7_SIGNED]:
        bundle.certificates.extend(_load_pkcs7(der, bundle))
    elif tags[:3] == [b"\x30", b"\x30", b"\x03"]:
        _load_certificate_or_csr(der, bundle)
    elif tags[:1] == [b"\x02"] or tags[:2] == [b"\x30", b"\x04"]:
        bundle.keys.append(pki_keys.load_private_key(der, password))
    else:
        raise PkiError(NOTHING_RECOGNISED)


def _is_text(data: bytes) -> bool:
    """Tell whether data is printable text (a "0" at the start of a text file is not DER)."""
    sample = data[:512]
    return all(32 <= b < 127 or b in b"\r\n\t" for b in sample)


def _tlv_end(der: bytes, pos: int, where: str) -> int:
    """Return the offset just past the DER element at pos, refusing truncated lengths."""
    if pos + 2 > len(der):
        raise PkiError(f"The data is truncated or corrupted: {where} ends too early.")
    length, offset = der[pos + 1], pos + 2
    if length == 0x80:
        return len(der)  # BER indefinite length (streamed PKCS#7): the loader checks the rest
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or offset + count > len(der):
            raise PkiError(f"The data is truncated or corrupted: {where} has a bad length.")
        length = int.from_bytes(der[offset : offset + count], "big")
        offset += count
    if offset + length > len(der):
        raise PkiError(
            f"The data is truncated or corrupted: {where} declares {offset + length} bytes "
            f"but only {len(der)} are present."
        )
    return offset + length


def _children(der: bytes, limit: int = 3) -> list[bytes]:
    """Return the first few elements inside the outer SEQUENCE, each as raw TLV bytes."""
    pos = _header_length(der)
    children = []
    while pos < len(der) and len(children) < limit:
        end = _tlv_end(der, pos, "the file")
        children.append(der[pos:end])
        pos = end
    return children


def _header_length(der: bytes) -> int:
    """Return the size of the tag and length bytes of the element at offset 0."""
    return 2 + (der[1] & 0x7F if der[1] & 0x80 else 0)


def _first_tlv(der: bytes, where: str) -> bytes:
    """Cut the first element (a TRUSTED CERTIFICATE carries OpenSSL extras after it)."""
    return der[: _tlv_end(der, 0, where)]


def _load_certificate(der: bytes, where: str) -> x509.Certificate:
    """Load one DER certificate, wrapping cryptography's error text."""
    try:
        return x509.load_der_x509_certificate(der)
    except _LOAD_ERRORS:
        raise PkiError(
            f"The data is truncated or corrupted: {where} is not a valid X.509 certificate."
        ) from None


def _load_certificate_or_csr(der: bytes, bundle: ParsedBundle) -> None:
    """Load a DER certificate; a DER CSR has the same outer shape and is only reported."""
    try:
        bundle.certificates.append(x509.load_der_x509_certificate(der))
        return
    except _LOAD_ERRORS:
        pass
    try:
        x509.load_der_x509_csr(der)
    except _LOAD_ERRORS:
        raise PkiError(
            "The data is truncated or corrupted: the DER certificate could not be read."
        ) from None
    bundle.warnings.append("Ignored a certificate signing request (DER).")


def _load_pkcs7(der: bytes, bundle: ParsedBundle) -> list[x509.Certificate]:
    """Load the certificates of a PKCS#7 SignedData structure."""
    try:
        certs = pkcs7.load_der_pkcs7_certificates(der)
    except (*_LOAD_ERRORS, UnsupportedAlgorithm):
        raise PkiError(
            "The data is truncated or corrupted: the PKCS#7 structure could not be read."
        ) from None
    if not certs:
        bundle.warnings.append("The PKCS#7 structure contains no certificates.")
    return list(certs)


def _load_pkcs12(der: bytes, password: bytes | None, bundle: ParsedBundle) -> None:
    """Load a PKCS#12/PFX file; a password given for an unprotected file is not an error."""
    attempts = [password, None] if password else [None]
    for attempt in attempts:
        try:
            loaded = pkcs12.load_pkcs12(der, attempt)
        except UnsupportedAlgorithm:
            raise PkiError(
                "The PKCS#12 file uses an encryption algorithm that is not supported; "
                "re-export it with AES-256 or 3DES."
            ) from None
        except _LOAD_ERRORS:
            continue
        _add_pkcs12_content(loaded, bundle)
        return
    if password:
        raise PkiError("Wrong password for the PKCS#12 file.")
    raise PkiError("The PKCS#12 file is password-protected; enter its password.")


def _add_pkcs12_content(loaded: pkcs12.PKCS12KeyAndCertificates, bundle: ParsedBundle) -> None:
    """Append a PKCS#12's main certificate, extra certificates and key."""
    if loaded.cert is not None:
        bundle.certificates.append(loaded.cert.certificate)
    bundle.certificates.extend(extra.certificate for extra in loaded.additional_certs)
    if loaded.key is not None:
        bundle.keys.append(loaded.key)


# --- Describing certificates -----------------------------------------------------------------


def describe(cert: x509.Certificate) -> CertInfo:
    """Return the stored facts about a certificate, never raising on odd content."""
    problems: list[str] = []
    extensions = _extensions(cert, problems)
    key_type, key_size = _key_facts(cert, problems)
    info = CertInfo(
        sha256=cert.fingerprint(hashes.SHA256()).hex(),
        sha1=cert.fingerprint(hashes.SHA1()).hex(),  # noqa: S303 - a fingerprint, not a signature
        serial=_serial_hex(cert.serial_number),
        subject=_name_string(cert, "subject", problems),
        issuer=_name_string(cert, "issuer", problems),
        common_name=_common_name(cert),
        sans=_sans(extensions),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        key_type=key_type,
        key_size=key_size,
        signature_algorithm=_oid_name(cert.signature_algorithm_oid),
        spki_sha256=_spki_sha256(cert),
        is_ca=_is_ca(extensions),
        ski=_ski(extensions),
        aki=_aki(extensions),
        self_signed=is_self_signed(cert),
        problems=problems,
    )
    if cert.serial_number <= 0:
        problems.append("The serial number is zero or negative, which RFC 5280 forbids.")
    _flag_hidden_characters(info)
    return info


def read_extensions(cert: x509.Certificate) -> x509.Extensions | None:
    """Return the parsed extensions, or None when they are malformed."""
    try:
        return cert.extensions
    except EXTENSION_ERRORS:
        return None


def _extensions(cert: x509.Certificate, problems: list[str]) -> x509.Extensions:
    """Return the parsed extensions, or none with a problem noted when they are malformed."""
    try:
        return cert.extensions
    except x509.DuplicateExtension as exc:
        problems.append(
            f"The certificate repeats the {_oid_name(exc.oid)} extension; "
            "its extensions were not read."
        )
    except EXTENSION_ERRORS:
        problems.append("The certificate's extensions are malformed and were not read.")
    return x509.Extensions([])


def _key_facts(cert: x509.Certificate, problems: list[str]) -> tuple[str, int]:
    """Return (key_type, key_size), or the algorithm OID name when the key is unsupported."""
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        problems.append("The certificate's public key uses an unsupported algorithm.")
        return _oid_name(cert.public_key_algorithm_oid), 0
    return pki_keys.key_type(key), pki_keys.key_size(key)


def _serial_hex(serial: int) -> str:
    """Format a serial number as lowercase hex with an even number of digits."""
    text = f"{serial:x}"
    return text if len(text) % 2 == 0 else "0" + text


def _name_string(cert: x509.Certificate, which: str, problems: list[str]) -> str:
    """Return the subject or issuer as an RFC 4514 string."""
    try:
        return getattr(cert, which).rfc4514_string()
    except ValueError:
        problems.append(f"The certificate's {which} is malformed.")
        return ""


def _common_name(cert: x509.Certificate) -> str | None:
    """Return the first common name of the subject, if any."""
    attributes = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attributes:
        return None
    value = attributes[0].value
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _sans(extensions: x509.Extensions) -> list[San]:
    """Return the DNS, IP, email and URI subject alternative names."""
    try:
        names = extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    sans = []
    for name in names:
        kind = _SAN_KINDS.get(type(name))
        if kind:
            sans.append(San(kind, str(name.value)))
    return sans


def _is_ca(extensions: x509.Extensions) -> bool:
    """Tell whether basicConstraints marks the certificate as a CA."""
    constraints = basic_constraints(extensions)
    return bool(constraints and constraints.ca)


def basic_constraints(extensions: x509.Extensions) -> x509.BasicConstraints | None:
    """Return the basicConstraints extension value, or None when absent."""
    try:
        return extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def _ski(extensions: x509.Extensions) -> str | None:
    """Return the subject key identifier as hex."""
    try:
        return extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest.hex()
    except x509.ExtensionNotFound:
        return None


def _aki(extensions: x509.Extensions) -> str | None:
    """Return the authority key identifier's key id as hex."""
    try:
        value = extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None
    return value.key_identifier.hex() if value.key_identifier is not None else None


def _oid_name(oid: x509.ObjectIdentifier) -> str:
    """Return an OID's short name ("sha256WithRSAEncryption"), else its dotted form."""
    name = oid._name
    return oid.dotted_string if name == "Unknown OID" else name


def _spki_sha256(cert: x509.Certificate) -> str:
    """Return the SPKI SHA-256 of the certificate's key ("" when the key is unsupported)."""
    try:
        return pki_keys.spki_sha256(cert.public_key())
    except (ValueError, UnsupportedAlgorithm):
        return ""


def _flag_hidden_characters(info: CertInfo) -> None:
    """Note control, bidirectional or invisible characters that can disguise a name."""
    fields = {"subject": info.subject, "issuer": info.issuer, "SAN": " ".join(info.san_strings)}
    for label, text in fields.items():
        if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in text):
            info.problems.append(
                f"The {label} contains invisible or bidirectional control characters."
            )


# --- Relations between certificates and keys -------------------------------------------------


def split_leaves(
    certs: list[x509.Certificate],
) -> tuple[list[x509.Certificate], list[x509.Certificate]]:
    """Split certificates into (leaves, CAs); without basicConstraints, issuing one makes a CA."""
    issued_by = Counter(cert.issuer.public_bytes() for cert in certs)
    leaves, cas = [], []
    for cert in certs:
        constraints = basic_constraints(read_extensions(cert) or x509.Extensions([]))
        if constraints is not None:
            is_ca = constraints.ca
        else:
            own = 1 if cert.issuer == cert.subject else 0
            is_ca = issued_by[cert.subject.public_bytes()] - own > 0
        (cas if is_ca else leaves).append(cert)
    return leaves, cas


def pair_keys(
    certs: list[x509.Certificate], keys: list[PrivateKeyTypes]
) -> tuple[dict[str, PrivateKeyTypes], list[PrivateKeyTypes]]:
    """Match keys to certificates by SPKI SHA-256: ({cert sha256: key}, unmatched keys)."""
    by_spki: dict[str, list[str]] = {}
    for cert in certs:
        spki = _spki_sha256(cert)
        if spki:
            by_spki.setdefault(spki, []).append(cert.fingerprint(hashes.SHA256()).hex())
    matched: dict[str, PrivateKeyTypes] = {}
    unmatched: list[PrivateKeyTypes] = []
    for key in keys:
        fingerprints = by_spki.get(pki_keys.spki_sha256(key), [])
        for fingerprint in fingerprints:
            matched[fingerprint] = key
        if not fingerprints:
            unmatched.append(key)
    return matched, unmatched
