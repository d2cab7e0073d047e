"""Single-use bundle URLs for webhook targets (issue: the receiver fetches, we never push keys
through a notice body unless the target asks for it)."""

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from certconsole.audit import record
from deployments.bundles import bundle_for
from deployments.models import BundleGrant, DeploymentStep, Target


class GrantError(Exception):
    """The URL is unknown (404), or was used or expired (410)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def grant_url(step: DeploymentStep) -> str | None:
    """A fresh single-use URL for a webhook step; None when there is no public base URL."""
    base = settings.CERTCONSOLE_BASE_URL.rstrip("/")
    if step.binding.target.kind != Target.Kind.WEBHOOK or not base:
        return None
    token = secrets.token_urlsafe(32)
    ttl = timedelta(seconds=settings.DEPLOY_BUNDLE_URL_SECONDS)
    BundleGrant.objects.create(
        step=step,
        token_sha256=_digest(token),
        include_key=step.binding.target.allow_private_key,
        expires_at=timezone.now() + ttl,
    )
    return base + reverse("deployments:bundle-fetch", args=[token])


def redeem(token: str, ip: str | None) -> dict:
    """The bundle behind token, exactly once and before it expires; the fetch is audited."""
    now = timezone.now()
    with transaction.atomic():
        grant = (
            BundleGrant.objects.select_for_update()
            .select_related("step__deployment__version__certificate")
            .filter(token_sha256=_digest(token))
            .first()
        )
        if grant is None:
            raise GrantError("No such bundle URL.", 404)
        if grant.used_at is not None:
            raise GrantError("This bundle URL was already used; each URL works once.", 410)
        if grant.expires_at <= now:
            raise GrantError("This bundle URL has expired.", 410)
        grant.used_at, grant.used_from = now, ip
        grant.save(update_fields=["used_at", "used_from"])
        version = grant.step.deployment.version
        bundle = bundle_for(version, include_key=grant.include_key)
        record(
            None,
            "certificate.fetch",
            version.certificate,
            via="webhook bundle URL",
            deployment=grant.step.deployment_id,
            sha256=version.sha256,
            key_included=bundle.key_pem is not None,
        )
    payload = {
        "certificate": bundle.name,
        "sha256": bundle.sha256,
        "cert_pem": bundle.cert_pem.decode(),
        "chain_pem": bundle.chain_pem.decode(),
        "fullchain_pem": bundle.fullchain_pem.decode(),
    }
    if bundle.key_pem is not None:
        payload["key_pem"] = bundle.key_pem.decode()
    return payload
