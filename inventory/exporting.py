"""Exporting a certificate version: public downloads, and the audited private key export.

The views, the key export page and `export_cert` all build files here, so a
format means the same bytes, file name and content type everywhere.
"""

import re
import unicodedata
from dataclasses import dataclass

from cryptography import x509
from django.views.decorators.debug import sensitive_variables

from certconsole.access.permissions import require
from certconsole.audit import record
from inventory.models import Certificate, CertificateVersion
from inventory.pki import formats
from inventory.pki.errors import PkiError
from inventory.pki.keys import is_self_signed, private_key_pem

PEM = "application/x-pem-file"


@dataclass(frozen=True)
class ExportFile:
    """Bytes to hand over, with the name and media type they are handed over as."""

    content: bytes
    filename: str
    content_type: str


class ExportError(PkiError):
    """The export cannot be made (no key, bad passphrase for the format…); a sentence for users."""


# --- Public parts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PublicFormat:
    label: str
    help: str
    extension: str
    content_type: str


PUBLIC_FORMATS: dict[str, PublicFormat] = {
    "cert": PublicFormat("Certificate (PEM)", "The certificate alone.", "crt.pem", PEM),
    "chain": PublicFormat(
        "Chain (PEM)", "The issuers: intermediates, then the root.", "chain.pem", PEM
    ),
    "fullchain": PublicFormat(
        "Full chain (PEM)",
        "Certificate and intermediates, what a server sends (no self-signed root).",
        "fullchain.pem",
        PEM,
    ),
    "der": PublicFormat(
        "Certificate (DER)", "Binary form, for Windows and Java.", "cer", "application/pkix-cert"
    ),
    "p7b": PublicFormat(
        "PKCS#7 (.p7b)",
        "Certificate and its chain in one file, for Windows and Java.",
        "p7b",
        "application/pkcs7-mime",
    ),
}


def public_file(version: CertificateVersion, fmt: str) -> ExportFile:
    """The public part `fmt` of a version (see PUBLIC_FORMATS); no permission check here."""
    spec = PUBLIC_FORMATS.get(fmt)
    if spec is None:
        raise ExportError(f"Unknown format {fmt!r}; choose one of {', '.join(PUBLIC_FORMATS)}.")
    leaf = version.to_x509()
    chain = version.chain_x509() if fmt in ("chain", "fullchain", "p7b") else []
    content = {
        "cert": lambda: formats.pem(leaf),
        "chain": lambda: formats.pem_many(chain),
        "fullchain": lambda: formats.pem_many([leaf, *served(chain)]),
        "der": lambda: formats.der(leaf),
        "p7b": lambda: formats.pkcs7_der([leaf, *chain]),
    }[fmt]()
    return ExportFile(content, filename(version.certificate, spec.extension), spec.content_type)


def served(chain: list[x509.Certificate]) -> list[x509.Certificate]:
    """The chain a server sends: everything but a self-signed root."""
    return [cert for cert in chain if not is_self_signed(cert)]


# --- Private key ------------------------------------------------------------------------------

REQUIRED, OPTIONAL, REFUSED = "required", "optional", "refused"


@dataclass(frozen=True)
class KeyFormat:
    label: str
    group: str
    passphrase: str  # REQUIRED, OPTIONAL or REFUSED
    help: str


KEY_FORMATS: dict[str, KeyFormat] = {
    "p12": KeyFormat(
        "PKCS#12 / PFX, AES-256",
        "Key and certificate",
        REQUIRED,
        "Key, certificate and chain in one file; Windows Server 2019+, macOS, Java 9+, browsers.",
    ),
    "p12-legacy": KeyFormat(
        "PKCS#12 / PFX, legacy 3DES",
        "Key and certificate",
        REQUIRED,
        "For Windows Server 2016 and older, old Java and appliances that reject AES.",
    ),
    "jks": KeyFormat(
        "Java KeyStore (JKS)",
        "Key and certificate",
        REQUIRED,
        "For Java applications that still need JKS.",
    ),
    "key-encrypted": KeyFormat(
        "Private key, encrypted PEM",
        "Key only",
        REQUIRED,
        "PKCS#8 PEM protected by the passphrase you choose.",
    ),
    "key": KeyFormat(
        "Private key, unencrypted PEM",
        "Key only",
        REFUSED,
        "PKCS#8 PEM in clear text: anyone who gets the file can use the key.",
    ),
    "nginx": KeyFormat(
        "nginx", "Server bundle (zip)", OPTIONAL, "fullchain.pem, privkey.pem and directives."
    ),
    "apache": KeyFormat(
        "Apache httpd",
        "Server bundle (zip)",
        OPTIONAL,
        "cert.pem, chain.pem, privkey.pem and mod_ssl directives.",
    ),
    "iis": KeyFormat(
        "IIS / Windows",
        "Server bundle (zip)",
        REQUIRED,
        "Modern and legacy PFX files with import instructions.",
    ),
    "tomcat": KeyFormat(
        "Apache Tomcat",
        "Server bundle (zip)",
        REQUIRED,
        "keystore.p12, keystore.jks and a server.xml Connector.",
    ),
    "haproxy": KeyFormat(
        "HAProxy",
        "Server bundle (zip)",
        REFUSED,
        "One combined PEM; HAProxy cannot read an encrypted key.",
    ),
    "kubernetes": KeyFormat(
        "Kubernetes TLS Secret",
        "Server bundle (zip)",
        REFUSED,
        "A kubernetes.io/tls Secret manifest; Secrets hold the key unencrypted.",
    ),
}
DEFAULT_KEY_FORMAT = "p12"


def check_passphrase(fmt: str, passphrase: str) -> None:
    """Refuse a passphrase the format cannot use, or a missing one it needs."""
    spec = KEY_FORMATS[fmt]
    if spec.passphrase == REQUIRED and not passphrase:
        raise ExportError(f"{spec.label} files must be protected: choose a passphrase.")
    if spec.passphrase == REFUSED and passphrase:
        raise ExportError(f"{spec.label} cannot be protected by a passphrase; leave it empty.")


@sensitive_variables("key", "secret", "passphrase", "content")
def key_file(version: CertificateVersion, fmt: str, passphrase: str = "") -> ExportFile:
    """Build the key export file; no permission check or audit here (see export_key)."""
    if fmt not in KEY_FORMATS:
        raise ExportError(f"Unknown format {fmt!r}; choose one of {', '.join(KEY_FORMATS)}.")
    if version.private_key_id is None:
        raise ExportError(
            "This version has no private key in CertConsole: there is nothing to export."
        )
    check_passphrase(fmt, passphrase)
    secret = passphrase.encode("utf-8")
    certificate = version.certificate
    key = version.private_key.unseal()
    leaf = version.to_x509()
    chain = version.chain_x509()
    name = safe_stem(certificate.name)
    if fmt in formats.SERVER_BUNDLE_KINDS:
        content = formats.server_bundle(
            fmt, name=name, key=key, cert=leaf, chain=chain, password=secret or None
        )
        return ExportFile(content, filename(certificate, f"{fmt}.zip"), "application/zip")
    if fmt in ("key", "key-encrypted"):
        content = private_key_pem(key, secret or None)
        return ExportFile(content, filename(certificate, "key.pem"), PEM)
    if fmt == "jks":
        content = formats.jks(key, leaf, chain, passphrase, alias=name)
        return ExportFile(content, filename(certificate, "jks"), "application/x-java-keystore")
    legacy = fmt == "p12-legacy"
    content = formats.pkcs12(key, leaf, chain, secret, legacy=legacy, friendly_name=name.encode())
    extension = "legacy.p12" if legacy else "p12"
    return ExportFile(content, filename(certificate, extension), "application/x-pkcs12")


@sensitive_variables("passphrase", "exported")
def export_key(
    actor, version: CertificateVersion, fmt: str, *, reason: str, passphrase: str = ""
) -> ExportFile:
    """Export a version's private key: check the right, build the file, then audit it.

    The file is built first so a refused format leaves no false audit event; the
    event is written before the caller sends anything, so a failing audit
    means no key leaves.
    """
    certificate = version.certificate
    require(actor, "certificate.export_key", certificate)
    if not reason.strip():
        raise ExportError("Give a reason: key exports are recorded in the audit log.")
    exported = key_file(version, fmt, passphrase)
    record(
        actor,
        "certificate.export_key",
        certificate,
        reason=reason.strip(),
        format=fmt,
        sha256=version.sha256,
        encrypted=bool(passphrase),
    )
    return exported


# --- Names and versions -----------------------------------------------------------------------


def safe_stem(text: str) -> str:
    """A file name stem from user text: ASCII, no path separators, no dot files."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_text.replace("*", "wildcard"))
    stem = re.sub(r"\.{2,}", ".", stem).strip(".-_")[:80].strip(".-_")
    return stem or "certificate"


def filename(certificate: Certificate, extension: str) -> str:
    """The download name for one of a certificate's files: "<name>.<extension>"."""
    return f"{safe_stem(certificate.name)}.{extension}"


def version_of(certificate: Certificate, sha256: str | None) -> CertificateVersion | None:
    """The version with this SHA-256 (any case), or the current one when none is asked for."""
    if not sha256:
        return certificate.current_version
    return certificate.versions.filter(sha256=sha256.strip().lower()).first()
