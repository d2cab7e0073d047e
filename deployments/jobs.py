"""Background jobs of deployments: thin wrappers taking ids, run on the deploy and scan queues."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from certconsole.audit.context import Source, audit_context
from deployments import engine, monitoring, rollout
from deployments.models import EndpointCheck


def run_deployment(deployment_id: int) -> str | None:
    """Run or resume one rollout (queue "deploy")."""
    with audit_context(source=Source.JOB, principal="job:deployments.run_deployment"):
        return engine.run_deployment(deployment_id)


def check_endpoints_job(project_id: int | None = None) -> dict:
    """The scheduled synthetic checks (queue "scan"); also prunes old checks and revives rollouts.

    Rollouts abandoned by a killed worker are re-enqueued here, so that the one schedule
    entry of deployments also keeps rollouts from hanging forever.
    """
    from certconsole.access.models import Project

    project = Project.objects.get(pk=project_id) if project_id is not None else None
    with audit_context(source=Source.JOB, principal="job:deployments.check_endpoints"):
        checks = monitoring.check_endpoints(project)
        resumed = rollout.resume_stalled() if project is None else []
    days = int(getattr(settings, "ENDPOINT_CHECK_RETENTION_DAYS", 90))
    pruned, _ = EndpointCheck.objects.filter(
        checked_at__lt=timezone.now() - timedelta(days=days)
    ).delete()
    return {
        "checks": len(checks),
        "failed": sum(not c.ok for c in checks),
        "drift": sum(c.drift for c in checks),
        "resumed_deployments": resumed,
        "pruned": pruned,
    }


def resume_stalled_deployments() -> list[int]:
    """Re-enqueue rollouts whose worker died."""
    with audit_context(source=Source.JOB, principal="job:deployments.resume_stalled"):
        return rollout.resume_stalled()
