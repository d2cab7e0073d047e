"""Private CAs: create them, give them profiles, sign with them, revoke, publish their CRLs.

Views, commands, the schedule and orders/issuance.py all call these functions. Only
ProjectAdmins (issuer.manage) create CAs and profiles, and every signature — a CA
certificate, a leaf, a CRL — is audited as `ca.sign`. The cryptography is in orders/ca/.
"""

import re
from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.db import transaction
from django.utils import timezone

from certconsole.access.permissions import require
from certconsole.audit import record
from inventory.models import CertificateVersion, PrivateKey
from inventory.pki import formats
from inventory.pki import keys as pki_keys
from orders import ca as core
from orders.ca.profiles import normalize_dns
from orders.domains import collect_names
from orders.models import CaRevocation, CertificateAuthority, IssuanceProfile, Order

CaError = core.CaError
# A CRL is re-signed every day (schedule) and on every revocation; clients may cache it a week.
CRL_VALID_DAYS = 7
CRL_MAX_AGE = timedelta(days=1)
TRUSTSTORE_PASSWORD = "changeit"  # the Java default; the download form lets the user choose
# RevokeForm's RFC 5280 reason codes → the CRL reason names of orders.ca.crl.
REASON_NAMES = {
    0: "unspecified",
    1: "key_compromise",
    3: "affiliation_changed",
    4: "superseded",
    5: "cessation_of_operation",
}
_SEPARATORS = re.compile(r"[,;\s]+")


def normalize_names(raw: list[str] | str) -> tuple[list[str], list[str]]:
    """Names for a private CA order: single labels such as localhost are fine here."""
    entries = _SEPARATORS.split(raw) if isinstance(raw, str) else list(raw)
    return collect_names(entries, normalize_dns)


# --- CAs and profiles --------------------------------------------------------------------------


def create_ca(
    actor,
    project,
    *,
    name: str,
    subject: str,
    key_type: str = "ec-p256",
    days: int = 3650,
    parent: CertificateAuthority | None = None,
    external_root: bool = False,
    path_length: int | None = None,
    permitted_dns: list[str] | None = None,
    excluded_dns: list[str] | None = None,
) -> CertificateAuthority:
    """A root, an intermediate under a console CA, or (external_root) a key and CSR that an
    external root signs later. CaError says why not."""
    require(actor, "issuer.manage", project)
    name = name.strip()
    if not name:
        raise CaError("Give the CA a name.")
    if CertificateAuthority.objects.filter(project=project, name=name).exists():
        raise CaError(f"This project already has a CA named “{name}”.")
    if parent is not None and (parent.project_id != project.pk or not parent.is_active):
        raise CaError("The parent must be an active CA of this project.")
    spec = core.CaSpec(
        subject=subject,
        key_kind=key_type,
        days=days,
        path_length=path_length,
        permitted_dns=list(permitted_dns or []),
        excluded_dns=list(excluded_dns or []),
    )
    material, csr_pem = None, ""
    if external_root:
        csr_pem, key = core.intermediate_csr(spec)
    elif parent is not None:
        material = core.create_intermediate(spec, parent.material())
        key = material.key
    else:
        material = core.create_root(spec)
        key = material.key
    with transaction.atomic():
        ca = CertificateAuthority(
            project=project,
            name=name,
            parent=parent,
            private_key=PrivateKey.seal(project, key),
            subject=spec.subject,
            key_type=key_type,
            path_length=path_length,
            permitted_dns=spec.permitted_dns,
            excluded_dns=spec.excluded_dns,
            created_by=actor if actor is not None and actor.is_authenticated else None,
        )
        if material is None:
            ca.status = CertificateAuthority.Status.PENDING_CSR
            ca.csr_pem = csr_pem.decode()
        else:
            _set_certificate(ca, material.cert)
        ca.save()
        record(actor, "ca.create", ca, kind=ca.kind, subject=ca.subject, key_type=key_type)
        if material is not None:
            signer = parent or ca
            _audit_sign(actor, signer, "ca", material.cert, signed_ca=ca.name)
    return ca


def _set_certificate(ca: CertificateAuthority, cert: x509.Certificate) -> None:
    ca.cert_der = cert.public_bytes(serialization.Encoding.DER)
    ca.subject = cert.subject.rfc4514_string()
    ca.not_after = cert.not_valid_after_utc


def _audit_sign(actor, ca: CertificateAuthority, what: str, cert=None, **detail) -> None:
    if cert is not None:
        detail.update(
            serial=f"{cert.serial_number:x}",
            subject=cert.subject.rfc4514_string(),
            not_after=cert.not_valid_after_utc.isoformat(),
        )
    record(actor, "ca.sign", ca, signed=what, **detail)


def accept_signed(
    actor, ca: CertificateAuthority, cert_pem: bytes, chain_pem: bytes = b""
) -> CertificateAuthority:
    """The certificate an external root signed for the CA's CSR (with that root's chain)."""
    require(actor, "issuer.manage", ca)
    if ca.status != CertificateAuthority.Status.PENDING_CSR:
        raise CaError("This CA is not waiting for a signed certificate.")
    material = core.accept_signed_intermediate(ca.private_key.unseal(), cert_pem, chain_pem)
    with transaction.atomic():
        _set_certificate(ca, material.cert)
        ca.external_chain_pem = formats.pem_many(material.chain).decode()
        ca.status = CertificateAuthority.Status.ACTIVE
        ca.save()
        record(
            actor,
            "ca.activate",
            ca,
            subject=ca.subject,
            issuer=material.cert.issuer.rfc4514_string(),
        )
    return ca


def add_profile(
    actor,
    ca: CertificateAuthority,
    *,
    name: str,
    usage: str = "server",
    allowed_domains: list[str] | None = None,
    max_days: int = 397,
    san_types: list[str] | None = None,
    allow_wildcards: bool = False,
) -> IssuanceProfile:
    """A profile of the CA; the pure core validates it (CaError with every reason)."""
    require(actor, "issuer.manage", ca)
    name = name.strip()
    if not name:
        raise CaError("Give the profile a name.")
    if ca.profiles.filter(name=name).exists():
        raise CaError(f"The CA “{ca.name}” already has a profile named “{name}”.")
    spec = core.Profile(
        name=name,
        usage=usage,
        allowed_domains=list(allowed_domains or ["*"]),
        max_days=max_days,
        san_types=set(san_types or ["dns"]),
        allow_wildcards=allow_wildcards,
    )
    with transaction.atomic():
        profile = IssuanceProfile.objects.create(
            ca=ca,
            name=name,
            usage=spec.usage,
            allowed_domains=spec.allowed_domains,
            max_days=spec.max_days,
            san_types=sorted(spec.san_types),
            allow_wildcards=spec.allow_wildcards,
        )
        record(
            actor,
            "ca.profile_create",
            ca,
            profile=name,
            usage=usage,
            allowed_domains=spec.allowed_domains,
            max_days=max_days,
        )
    return profile


# --- Issuing -----------------------------------------------------------------------------------


def sign_order(order: Order) -> bytes:
    """Sign the order's key (or CSR) with its CA under its profile; the chain as PEM.

    CaError (every reason) when the profile or the name constraints refuse it.
    """
    ca, profile = order.ca, order.profile
    if not ca.is_active:
        raise CaError(f"the CA {ca} is still waiting for its signed certificate")
    days = order.days or profile.max_days
    if order.csr_supplied:
        request = core.read_csr(order.csr_pem).issue_request(days)
    else:
        key = pki_keys.load_private_key(order.private_key_pem())
        request = core.IssueRequest(public_key=key.public_key(), dns=list(order.domains), days=days)
    material = ca.material()
    cert = core.issue(material, request, profile.spec(), crl_url=ca.crl_url())
    actor = order.approved_by or order.requested_by
    _audit_sign(actor, ca, "certificate", cert, profile=profile.name, order=order.pk)
    return formats.pem(cert) + material.chain_pem


# --- Revocation and CRLs -----------------------------------------------------------------------


def revoke(actor, ca: CertificateAuthority, version: CertificateVersion, code: int, reason: str):
    """List the version in the CA's CRL (the caller marks the version revoked) and re-sign it."""
    require(actor, "certificate.revoke", version.certificate)
    CaRevocation.objects.get_or_create(
        ca=ca,
        serial=version.serial,
        defaults={
            "revoked_at": timezone.now(),
            "reason": REASON_NAMES.get(code, "unspecified"),
            "version": version,
        },
    )
    regenerate_crl(ca, actor)


def regenerate_crl(ca: CertificateAuthority, actor=None) -> x509.CertificateRevocationList:
    """Sign a new CRL of every revocation of the CA, with the next CRL number; store it."""
    with transaction.atomic():
        ca = CertificateAuthority.objects.select_for_update().get(pk=ca.pk)
        number = ca.next_crl_number
        entries = [
            core.RevokedEntry(int(r.serial, 16), r.revoked_at, r.reason)
            for r in ca.revocations.all()
        ]
        now = timezone.now()
        crl = core.build_crl(
            ca.material(),
            entries,
            this_update=now,
            next_update=now + timedelta(days=CRL_VALID_DAYS),
            crl_number=number,
        )
        CertificateAuthority.objects.filter(pk=ca.pk).update(
            crl_der=core.crl_der(crl), crl_generated_at=now, next_crl_number=number + 1
        )
        _audit_sign(actor, ca, "crl", crl_number=number, revoked=len(entries))
    return crl


def current_crl(ca: CertificateAuthority) -> x509.CertificateRevocationList:
    """The stored CRL, re-signed first when there is none or it is older than a day."""
    fresh = ca.crl_generated_at and ca.crl_generated_at > timezone.now() - CRL_MAX_AGE
    if ca.crl_der and fresh:
        return x509.load_der_x509_crl(bytes(ca.crl_der))
    return regenerate_crl(ca)


def regenerate_all() -> int:
    """The daily job: a fresh CRL for every active CA; returns how many were signed."""
    count = 0
    for ca in CertificateAuthority.objects.filter(status=CertificateAuthority.Status.ACTIVE):
        regenerate_crl(ca)
        count += 1
    return count


# --- Downloads ---------------------------------------------------------------------------------


def trust_chain(ca: CertificateAuthority) -> list[x509.Certificate]:
    """The CA and the CAs above it, up to the root: what clients trust."""
    return [ca.cert(), *ca.chain()]


def download(ca: CertificateAuthority, fmt: str, password: str = "") -> tuple[bytes, str, str]:
    """(body, content type, file name) of a CA download: pem, der, bundle or jks."""
    slug = re.sub(r"[^A-Za-z0-9.-]+", "-", ca.name).strip("-") or "ca"
    if fmt == "der":
        return formats.der(ca.cert()), "application/pkix-cert", f"{slug}.cer"
    if fmt == "bundle":
        return formats.pem_many(trust_chain(ca)), "application/x-pem-file", f"{slug}-bundle.pem"
    if fmt == "jks":
        body = formats.truststore_jks(trust_chain(ca), password or TRUSTSTORE_PASSWORD)
        return body, "application/octet-stream", f"{slug}-truststore.jks"
    return formats.pem(ca.cert()), "application/x-pem-file", f"{slug}.pem"
