"""Importing certificates and keys: plan (what would happen), then apply (all or nothing per file).

The web upload shows the plan as a preview before the user confirms; the
`import_certs` command plans and applies in one go. Both call these functions.
"""

import functools
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from certconsole.access.permissions import require
from certconsole.audit import record
from inventory.models import (
    Certificate,
    CertificateVersion,
    ChainLink,
    IssuerCertificate,
    PrivateKey,
    Source,
)
from inventory.pki import keys as pki_keys
from inventory.pki.chains import ChainResult, build_chain, certifi_roots
from inventory.pki.errors import PkiError
from inventory.pki.lint import Finding, lint
from inventory.pki.parse import CertInfo, describe, pair_keys, parse_bundle, split_leaves

KEY_PERMISSION_MESSAGE = (
    "This file contains a private key; uploading private keys needs the KeyCustodian role."
)


def max_file_bytes() -> int:
    return getattr(settings, "CERTCONSOLE_IMPORT_MAX_BYTES", 5 * 1024 * 1024)


def max_certificates() -> int:
    return getattr(settings, "CERTCONSOLE_IMPORT_MAX_CERTIFICATES", 500)


@dataclass
class PlannedCertificate:
    """One leaf of a file and what importing it would do."""

    cert: x509.Certificate
    info: CertInfo
    key: object | None
    chain: ChainResult
    findings: list[Finding]
    outcome: str  # "new", "new_version", "duplicate"
    existing: Certificate | None = None

    @property
    def has_private_key(self) -> bool:
        return self.key is not None


@dataclass
class FilePlan:
    """Everything one file would import, or why it cannot be imported."""

    file: str
    error: str | None = None
    certificates: list[PlannedCertificate] = field(default_factory=list)
    cas: list[x509.Certificate] = field(default_factory=list)
    keys_for_existing: list[tuple[CertificateVersion, object]] = field(default_factory=list)
    unmatched_keys: list[object] = field(default_factory=list)
    key_count: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def would_write(self) -> bool:
        new_certs = any(p.outcome != "duplicate" for p in self.certificates)
        return self.error is None and (new_certs or bool(self.keys_for_existing))


@dataclass
class FileResult:
    """What an import did to one file: the JSON shape of `import_certs --json`."""

    file: str
    status: str  # "imported", "duplicate", "rejected"
    error: str | None
    certificates: list[dict]
    keys: int
    versions: list[CertificateVersion] = field(default_factory=list)

    def as_json(self) -> dict:
        return {
            "file": self.file,
            "status": self.status,
            "error": self.error,
            "certificates": self.certificates,
            "keys": self.keys,
        }


# --- Planning -----------------------------------------------------------------------------


def plan_file(
    actor,
    project,
    filename: str,
    data: bytes,
    password: bytes | None = None,
    *,
    name: str | None = None,
) -> FilePlan:
    """Parse one file and decide, without writing anything, what importing it would do."""
    plan = FilePlan(file=filename)
    if len(data) > max_file_bytes():
        limit = max_file_bytes() / 1024 / 1024
        plan.error = f"The file is larger than the {limit:g} MB limit."
        return plan
    try:
        bundle = parse_bundle(data, password, max_certificates=max_certificates())
    except PkiError as exc:
        plan.error = str(exc)
        return plan
    plan.warnings = list(bundle.warnings)
    plan.key_count = len(bundle.keys)
    if bundle.keys and actor is not None and not actor.has_perm("certificate.upload_key", project):
        record(actor, "access.denied", project, permission="certificate.upload_key", file=filename)
        plan.error = KEY_PERMISSION_MESSAGE
        return plan
    leaves, cas = split_leaves(bundle.certificates)
    plan.cas = cas
    matched, unmatched = pair_keys(leaves, bundle.keys)
    now = timezone.now()
    target = _named_certificate(project, name)
    for leaf in leaves:
        info = describe(leaf)
        candidates = [*cas, *_pool_candidates(leaf)]
        chain = build_chain(leaf, candidates, _roots_for(leaf, candidates))
        findings = lint(leaf, chain, now=now, file_order=bundle.certificates)
        outcome, existing = _outcome(project, info, target)
        plan.certificates.append(
            PlannedCertificate(
                leaf, info, matched.get(info.sha256), chain, findings, outcome, existing
            )
        )
    _match_keys_to_inventory(project, plan, unmatched)
    return plan


def _named_certificate(project, name: str | None) -> Certificate | None:
    if not name:
        return None
    return Certificate.objects.filter(project=project, name=name).first()


def _outcome(project, info: CertInfo, target: Certificate | None):
    """duplicate (same SHA-256 here), new_version (of target or same names), or new."""
    duplicate = CertificateVersion.objects.filter(project=project, sha256=info.sha256).first()
    if duplicate is not None:
        return "duplicate", duplicate.certificate
    if target is not None:
        return "new_version", target
    same_names = _certificate_with_same_names(project, info)
    if same_names is not None:
        return "new_version", same_names
    return "new", None


def _certificate_with_same_names(project, info: CertInfo) -> Certificate | None:
    names = {s.value.lower() for s in info.sans if s.kind == "dns"}
    if not names and info.common_name:
        names = {info.common_name.lower()}
    if not names:
        return None
    first = min(names)
    candidates = Certificate.objects.filter(project=project, names__name=first)
    for candidate in candidates.prefetch_related("names")[:20]:
        if {n.name for n in candidate.names.all()} == names:
            return candidate
    return None


def _pool_candidates(leaf: x509.Certificate) -> list[x509.Certificate]:
    """Issuers from the pool whose subject could continue this leaf's chain."""
    found: list[x509.Certificate] = []
    wanted = {leaf.issuer.rfc4514_string()}
    seen: set[str] = set()
    for _ in range(10):
        wanted -= seen
        if not wanted:
            break
        seen |= wanted
        rows = IssuerCertificate.objects.filter(subject__in=wanted)
        certs = [row.to_x509() for row in rows]
        found += certs
        wanted = {c.issuer.rfc4514_string() for c in certs if c.issuer != c.subject}
    return found


@functools.cache
def _roots_by_subject() -> dict[x509.Name, list[x509.Certificate]]:
    """certifi's roots indexed by subject, built once per process."""
    index: dict[x509.Name, list[x509.Certificate]] = {}
    for root in certifi_roots():
        index.setdefault(root.subject, []).append(root)
    return index


def _roots_for(leaf: x509.Certificate, candidates: list[x509.Certificate]):
    """The roots that can continue this chain: those named as the issuer of one of its links.

    build_chain fingerprints and hashes the key of every root it is given; all of
    certifi's roots for every leaf was half the planning time of a bulk import.
    """
    index = _roots_by_subject()
    names: set[x509.Name] = set()
    wanted = {leaf.issuer, *(c.issuer for c in candidates)}
    roots: list[x509.Certificate] = []
    while wanted - names:
        names |= wanted
        roots = [root for name in names for root in index.get(name, ())]
        wanted = names | {root.issuer for root in roots}
    return roots


def _match_keys_to_inventory(project, plan: FilePlan, keys: list) -> None:
    """Keys without a certificate in the file may belong to one already in the inventory."""
    for key in keys:
        spki = pki_keys.spki_sha256(key)
        version = (
            CertificateVersion.objects.filter(project=project, spki_sha256=spki)
            .order_by("-not_after")
            .first()
        )
        if version is None:
            plan.unmatched_keys.append(key)
        elif version.private_key_id is None:
            plan.keys_for_existing.append((version, key))


# --- Applying -----------------------------------------------------------------------------


def apply_plan(
    actor,
    project,
    plan: FilePlan,
    *,
    name: str | None = None,
    owner: str = "",
    labels: dict | None = None,
    store_unmatched_keys: bool = False,
    source: str = Source.UPLOADED,
) -> FileResult:
    """Write what the plan says, in one transaction; a rejected plan writes nothing."""
    if plan.error:
        return FileResult(plan.file, "rejected", plan.error, [], plan.key_count)
    if plan.unmatched_keys and not store_unmatched_keys and not plan.certificates:
        message = "The private key matches no certificate; confirm to store it anyway (flagged)."
        return FileResult(plan.file, "rejected", message, [], plan.key_count)
    require(actor, "certificate.create", project)
    with transaction.atomic():
        versions = [
            _apply_certificate(
                actor, project, planned, name=name, owner=owner, labels=labels, source=source
            )
            for planned in plan.certificates
        ]
        new_cas = _add_to_pool(actor, project, plan.cas)
        for version, key in plan.keys_for_existing:
            _attach_key(actor, version, key)
        if store_unmatched_keys:
            for key in plan.unmatched_keys:
                stored = PrivateKey.seal(project, key, unmatched=True)
                record(
                    actor,
                    "key.upload_unmatched",
                    project,
                    spki_sha256=stored.spki_sha256,
                    file=plan.file,
                )
    wrote = any(v is not None for v in versions) or plan.keys_for_existing or new_cas
    status = "imported" if wrote or (store_unmatched_keys and plan.unmatched_keys) else "duplicate"
    summaries = [_summary(p) for p in plan.certificates]
    if not plan.certificates:  # a bundle of CA certificates: report what went to the pool
        summaries = [_ca_summary(describe(cert)) for cert in plan.cas]
    return FileResult(
        plan.file, status, None, summaries, plan.key_count, [v for v in versions if v is not None]
    )


def _add_to_pool(actor, project, cas: list[x509.Certificate]) -> int:
    """Put CA certificates in the issuer pool; returns how many were new."""
    new = 0
    for cert in cas:
        info = describe(cert)
        if not IssuerCertificate.objects.filter(sha256=info.sha256).exists():
            IssuerCertificate.from_x509(cert, info)
            record(actor, "issuer_pool.add", project, sha256=info.sha256, subject=info.subject)
            new += 1
    return new


def _ca_summary(info: CertInfo) -> dict:
    return {
        "sha256": info.sha256,
        "subject": info.subject,
        "sans": info.san_strings,
        "not_after": info.not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "key_type": info.key_type,
        "has_private_key": False,
    }


def _summary(planned: PlannedCertificate) -> dict:
    has_key = planned.has_private_key or _existing_has_key(planned)
    return {**_ca_summary(planned.info), "has_private_key": has_key}


def _existing_has_key(planned: PlannedCertificate) -> bool:
    if planned.outcome != "duplicate" or planned.existing is None:
        return False
    return CertificateVersion.objects.filter(
        certificate=planned.existing, sha256=planned.info.sha256, private_key__isnull=False
    ).exists()


def _apply_certificate(actor, project, planned: PlannedCertificate, *, name, owner, labels, source):
    if planned.outcome == "duplicate":
        if planned.key is not None:
            version = CertificateVersion.objects.get(project=project, sha256=planned.info.sha256)
            if version.private_key_id is None:
                _attach_key(actor, version, planned.key)
        return None
    certificate = planned.existing or _new_certificate(
        project, planned.info, name, owner, labels, source
    )
    version = _create_version(actor, project, certificate, planned)
    current = certificate.current_version
    if current is None or version.not_after >= current.not_after:
        certificate.set_current(version)
    record(
        actor,
        "certificate.import",
        certificate,
        sha256=version.sha256,
        serial=version.serial,
        new_version=planned.outcome == "new_version",
        has_private_key=version.private_key_id is not None,
    )
    return version


def _new_certificate(project, info: CertInfo, name, owner, labels, source) -> Certificate:
    base = (name or _default_name(info))[:190]
    unique = base
    suffix = 2
    while Certificate.objects.filter(project=project, name=unique).exists():
        unique = f"{base} ({suffix})"
        suffix += 1
    labels = dict(labels or {})
    return Certificate.objects.create(
        project=project,
        name=unique,
        source=source,
        label_owner=owner or labels.pop("owner", ""),
        label_env=labels.pop("env", ""),
        label_app=labels.pop("app", ""),
        labels=labels,
    )


def _default_name(info: CertInfo) -> str:
    dns = [s.value for s in info.sans if s.kind == "dns"]
    return (dns[0] if dns else info.common_name) or info.sha256[:16]


def _create_version(actor, project, certificate, planned: PlannedCertificate):
    info = planned.info
    key = PrivateKey.seal(project, planned.key) if planned.key is not None else None
    version = CertificateVersion.objects.create(
        certificate=certificate,
        project=project,
        der=planned.cert.public_bytes(Encoding.DER),
        sha256=info.sha256,
        sha1=info.sha1,
        serial=info.serial,
        subject=info.subject,
        issuer=info.issuer,
        common_name=info.common_name or "",
        sans=[{"kind": s.kind, "value": s.value} for s in info.sans],
        not_before=info.not_before,
        not_after=info.not_after,
        key_type=info.key_type,
        key_size=info.key_size,
        signature_algorithm=info.signature_algorithm,
        spki_sha256=info.spki_sha256,
        chain_complete=planned.chain.complete,
        chain_trusted=planned.chain.trusted,
        missing_issuer=planned.chain.missing_issuer or "",
        private_key=key,
        lint_findings=[f.__dict__ for f in planned.findings],
        created_by=actor if actor is not None and actor.is_authenticated else None,
    )
    issuers = _pool_rows(planned.chain.chain[1:])
    links = [
        ChainLink(version=version, issuer=issuer, position=i)
        for i, issuer in enumerate(issuers, start=1)
    ]
    ChainLink.objects.bulk_create(links)
    if key is not None:
        record(
            actor,
            "certificate.upload_key",
            certificate,
            sha256=info.sha256,
            spki_sha256=key.spki_sha256,
        )
    return version


def _pool_rows(certs: list[x509.Certificate]) -> list[IssuerCertificate]:
    """The pool rows of certs in one query; describe() and create only the missing ones."""
    fingerprints = [cert.fingerprint(hashes.SHA256()).hex() for cert in certs]
    rows = {row.sha256: row for row in IssuerCertificate.objects.filter(sha256__in=fingerprints)}
    return [
        rows.get(fp) or IssuerCertificate.from_x509(cert, describe(cert))
        for cert, fp in zip(certs, fingerprints, strict=True)
    ]


def _attach_key(actor, version: CertificateVersion, key) -> None:
    stored = PrivateKey.seal(version.project, key)
    version.private_key = stored
    version.save(update_fields=["private_key"])
    certificate = version.certificate
    if certificate.current_version_id == version.pk:
        certificate.has_private_key = True
        certificate.save(update_fields=["has_private_key", "updated_at"])
    record(
        actor,
        "certificate.upload_key",
        certificate,
        sha256=version.sha256,
        spki_sha256=stored.spki_sha256,
    )


def import_file(
    actor, project, filename: str, data: bytes, password: bytes | None = None, **options
) -> FileResult:
    """Plan and apply one file (the command-line path)."""
    plan = plan_file(actor, project, filename, data, password, name=options.get("name"))
    return apply_plan(actor, project, plan, **options)
