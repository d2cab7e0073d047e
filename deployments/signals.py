"""Auto-redeploy: a new current version (renewal, newer upload) rolls out to its bindings."""

import logging

from django.dispatch import receiver

from certconsole.audit import record
from deployments import rollout
from deployments.models import Binding
from inventory.models import Certificate, CertificateVersion, version_activated

logger = logging.getLogger(__name__)

notify_failure = rollout.notify_failure  # where failures of automatic rollouts are reported


@receiver(version_activated, dispatch_uid="deployments.auto_redeploy")
def auto_redeploy(sender, certificate_id, version_id, previous_version_id=None, **kwargs):
    """Start a rollout (trigger "renewal") over the bindings with auto-redeploy on.

    Sent after commit; whatever goes wrong here must not break the import that activated
    the version, so it is recorded as a failed deployment instead of raised.
    """
    try:
        bindings = list(
            Binding.objects.filter(certificate_id=certificate_id, auto_redeploy=True).exclude(
                deployed_version_id=version_id
            )
        )
        if not bindings:
            return None
        certificate = Certificate.objects.get(pk=certificate_id)
        version = CertificateVersion.objects.get(pk=version_id)
        return rollout.start_deployment(
            None,
            certificate,
            version,
            bindings=bindings,
            reason="A new version became current; its bindings redeploy automatically.",
            trigger="renewal",
        )
    except ValueError as exc:  # refused: e.g. another rollout of these bindings is under way
        _record_not_started(
            certificate_id, version_id, f"The automatic rollout did not start: {exc}"
        )
    except Exception as exc:
        logger.exception("Auto-redeploy of certificate %s failed", certificate_id)
        _record_not_started(
            certificate_id,
            version_id,
            f"Starting the automatic rollout failed ({exc!r}); a rollout left pending is "
            "retried by the scheduled sweep.",
        )
    return None


def _record_not_started(certificate_id: int, version_id: int, error: str) -> None:
    certificate = Certificate.objects.filter(pk=certificate_id).first()
    record(
        None,
        "deployment.failed",
        certificate,
        trigger="renewal",
        version_id=version_id,
        error=error,
        owner=certificate.label_owner if certificate else "",
    )
