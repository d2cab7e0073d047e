"""Renewal: when a certificate is due (policy or the CA's ARI window), and starting its order.

Settings: ACME_RENEWAL_RETRY_HOURS (6): after a failed renewal, wait this long before the
next automatic attempt.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from certconsole.access.permissions import require
from certconsole.audit import record
from inventory.models import Certificate, CertificateVersion
from orders import issuance
from orders.acme.errors import AcmeError
from orders.issuance import OrderError
from orders.models import KEY_TYPE_FROM_INVENTORY, AcmeAccount, Order, RenewalPolicy


def policy_for(certificate: Certificate) -> RenewalPolicy:
    """The certificate's policy, or an unsaved default one."""
    policy = RenewalPolicy.objects.filter(certificate=certificate).first()
    return policy or RenewalPolicy(certificate=certificate)


def _account(certificate: Certificate, policy: RenewalPolicy) -> AcmeAccount | None:
    if policy.issuer_id:
        return policy.issuer
    last = certificate.orders.filter(state=Order.State.ISSUED).order_by("-created_at").first()
    if last is not None:
        return last.account
    return AcmeAccount.objects.filter(project=certificate.project_id).first()


def due_at(policy: RenewalPolicy, version: CertificateVersion, account=None) -> datetime:
    """When this version should be renewed: the CA's ARI window start if offered, else policy."""
    if policy.use_ari and account is not None:
        try:
            window = account.client().renewal_info(version.to_x509().public_bytes(_pem_encoding()))
        except AcmeError:
            window = None
        if window is not None:
            return window.start
    if policy.mode == RenewalPolicy.Mode.DAYS_BEFORE:
        return version.not_after - timedelta(days=policy.days)
    return version.not_before + (version.not_after - version.not_before) * 2 / 3


def _pem_encoding():
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.PEM


def start_renewal(actor, certificate: Certificate, *, reason: str = "") -> Order:
    """Order a new version of certificate with the same names (and key, if the policy says)."""
    require(actor, "certificate.renew", certificate)
    version = certificate.current_version
    if version is None:
        raise OrderError("This certificate has no version to renew.")
    if certificate.orders.active().exists():
        raise OrderError("An order for this certificate is already under way.")
    policy = policy_for(certificate)
    last = certificate.orders.order_by("-created_at").first()
    if last is not None and last.kind != Order.Kind.ACME and not policy.issuer_id:
        return _renew_from(actor, certificate, version, policy, last, reason)
    account = _account(certificate, policy)
    if account is None:
        raise OrderError("This project has no ACME account to renew with; add one first.")
    domains = version.dns_names
    methods = {name: (last.methods.get(name) if last else None) for name in domains}
    private_key = None
    if policy.reuse_key and version.private_key_id:
        private_key = version.private_key.unseal()
    order = issuance.create_order(
        actor,
        certificate.project,
        account=account,
        domains=domains,
        methods={k: v for k, v in methods.items() if v},
        key_type=KEY_TYPE_FROM_INVENTORY.get(version.key_type, "ec-p256"),
        certificate=certificate,
        private_key=private_key,
        is_renewal=True,
    )
    record(actor, "certificate.renew", certificate, reason=reason, order=order.pk)
    return order


def _renew_from(actor, certificate, version, policy, last: Order, reason: str) -> Order:
    """Renew from the issuer of the last order: the same private CA profile, or a new CSR
    order for the same external CA with the same details (it waits for the certificate)."""
    private_key = None
    if policy.reuse_key and version.private_key_id:
        private_key = version.private_key.unseal()
    names = list(last.domains) or version.dns_names
    order = issuance.create_order(
        actor,
        certificate.project,
        kind=last.kind,
        profile=last.profile,
        external=dict(last.external),
        days=last.days,
        domains=names,
        key_type=KEY_TYPE_FROM_INVENTORY.get(version.key_type, last.key_type),
        certificate=certificate,
        labels=dict(last.labels),
        private_key=private_key,
        is_renewal=True,
    )
    record(actor, "certificate.renew", certificate, reason=reason, order=order.pk)
    return order


def renew_due(now=None) -> list[Order]:
    """Start renewals for every auto-renewing certificate that is due; returns the new orders."""
    now = now or timezone.now()
    retry = timedelta(hours=getattr(settings, "ACME_RENEWAL_RETRY_HOURS", 6))
    policies = RenewalPolicy.objects.filter(
        auto_renew=True, certificate__current_version__isnull=False, certificate__revoked=False
    ).select_related("certificate__current_version", "issuer")
    started = []
    for policy in policies:
        certificate = policy.certificate
        orders = certificate.orders
        if orders.active().exists():
            continue
        if orders.filter(state=Order.State.FAILED, updated_at__gt=now - retry).exists():
            continue
        account = _account(certificate, policy)
        if due_at(policy, certificate.current_version, account) > now:
            continue
        try:
            order = start_renewal(None, certificate, reason="Automatic renewal")
        except (OrderError, AcmeError) as exc:
            result = f"Renewal could not start: {exc}"
        else:
            started.append(order)
            result = f"Renewal order #{order.pk} started"
        RenewalPolicy.objects.filter(pk=policy.pk).update(last_result=result, last_attempt_at=now)
    return started
