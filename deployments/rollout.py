"""Rollouts: put a certificate version on its bindings wave by wave, verified by live handshakes.

One place for every deployment transition. Views, commands, jobs and the renewal signal call
these functions; each checks the permission, writes the rows and records the audit event.

A rollout pushes each binding of a wave through its target's driver, then probes the binding's
probe address with every SNI name until the served leaf is the version's three times in a row
(nginx reloads asynchronously, an old worker may still answer once), its chain carries the
version's intermediates and the names match. A failed push or check stops the rollout and puts
the previous version back on the bindings already changed in that wave, verified the same way.
The job is resumable: it claims the row with a conditional update and skips settled steps, so a
worker killed mid-run is replaced by running the job again (re-pushing is safe).
"""

import logging
import os
from collections import Counter
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from certconsole.access.permissions import require
from certconsole.audit import record
from certconsole.jobs import enqueue
from deployments import tlsprobe
from deployments.drivers import DriverError, driver_class
from deployments.models import Binding, Deployment, DeploymentStep, Target
from inventory.models import Certificate, CertificateVersion, NotificationLog
from inventory.reminders import notify_event

logger = logging.getLogger(__name__)

State = Deployment.State
Step = DeploymentStep.State

ACTIVE_STATES = (State.PENDING, State.RUNNING, State.PAUSED)
# Steps with work left for a worker; AWAITING_LIVE_CHECK waits for the monitoring check instead.
OPEN_STEPS = (Step.WAITING, Step.PUSHING, Step.VERIFYING)
SETTLED_STEPS = (Step.DONE, Step.AWAITING_LIVE_CHECK, Step.SKIPPED)
AUTOMATIC_TRIGGERS = ("renewal",)  # nobody watches these: failures notify the owner


def stale_after() -> timedelta:
    """A RUNNING rollout whose heartbeat is older than this was abandoned by its worker."""
    return timedelta(seconds=float(getattr(settings, "DEPLOY_STALE_AFTER", 600)))


def job_timeout() -> int:
    return int(getattr(settings, "DEPLOY_JOB_TIMEOUT", 3600))


# --- Targets and bindings -----------------------------------------------------------------------


def create_target(actor, project, name: str, kind: str, options: dict, credentials=None) -> Target:
    """A new target; ValueError with a sentence for the form when name, kind or options are bad."""
    require(actor, "target.manage", project)
    name = (name or "").strip()
    if not name:
        raise ValueError("Give the target a name.")
    if len(name) > 200:
        raise ValueError("The name is longer than 200 characters.")
    if not isinstance(options, dict):
        raise ValueError("Options must be a JSON object.")
    if credentials is not None and not isinstance(credentials, dict):
        raise ValueError("Credentials must be a JSON object.")
    validate_options(kind, options)
    if Target.objects.filter(project=project, name=name).exists():
        raise ValueError(f"A target called “{name}” already exists in this project.")
    with transaction.atomic():
        target = Target(project=project, name=name, kind=kind, options=options)
        target.set_credentials(credentials)
        target.save()
        record(
            actor,
            "target.create",
            target,
            kind=kind,
            options=options,
            has_credentials=bool(credentials),
        )
    return target


def validate_options(kind: str, options: dict) -> None:
    """Check a target's options: the driver's own rules, then the local command allow-list.

    nginx_local runs its test and reload commands on the console's own host, as the
    console's user. Whoever may manage targets must not gain a shell through them, so
    the programs are limited to settings.DEPLOY_LOCAL_PROGRAMS (operator's choice).
    """
    try:
        parsed = driver_class(kind).parse_options(options)
    except DriverError as exc:
        raise ValueError(exc.message) from None
    if kind != Target.Kind.NGINX_LOCAL:
        return
    allowed = set(getattr(settings, "DEPLOY_LOCAL_PROGRAMS", ["nginx"]))
    for field in ("test_command", "reload_command"):
        program = getattr(parsed, field)[0]
        if program not in allowed and os.path.basename(program) not in allowed:
            raise ValueError(
                f"{field}: “{program}” is not an allowed program on this host "
                f"(allowed: {', '.join(sorted(allowed))}; set DEPLOY_LOCAL_PROGRAMS)."
            )


def parse_address(text: str, default_port: int | None = None) -> tuple[str, int]:
    """ "host:port" or "[v6]:port" → (host, port); ValueError with a sentence otherwise."""
    text = (text or "").strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, ""
    if not port_text and default_port is not None:
        port_text = str(default_port)
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"“{text}” is not an address like host:443.")
    return host.lower(), int(port_text)


def normalise_sni_names(names) -> list[str]:
    """Lower-case A-label names, unique, in the order given; ValueError naming a bad one."""
    if isinstance(names, str):
        names = names.replace(",", " ").split()
    found: list[str] = []
    for raw in names or []:
        name = raw.strip().rstrip(".").lower()
        if not name:
            continue
        if "*" in name:
            raise ValueError(
                f"“{raw}” is a wildcard; give the names clients really ask for "
                "(e.g. www.example.com), which the live check can probe."
            )
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"“{raw}” is not a valid host name.") from None
        if name not in found:
            found.append(name)
    if not found:
        raise ValueError("Give at least one server name (SNI) the target serves.")
    return found


def create_binding(
    actor,
    certificate: Certificate,
    target: Target,
    sni_names,
    probe_host: str,
    probe_port: int,
    wave: int = 1,
    auto_redeploy: bool = True,
) -> Binding:
    """Bind certificate to target for sni_names, verified at probe_host:probe_port."""
    require(actor, "target.manage", target)
    if target.project_id != certificate.project_id:
        raise ValueError("The target belongs to another project than the certificate.")
    names = normalise_sni_names(sni_names)
    version = certificate.current_version
    if version is not None:
        leaf = version.to_x509()
        uncovered = [n for n in names if not tlsprobe.certificate_matches(leaf, n)]
        if uncovered:
            raise ValueError(
                f"“{certificate.name}” does not cover {', '.join(uncovered)}: serving it for "
                "that name would fail the clients' name check."
            )
    probe_host = (probe_host or "").strip().strip("[]").lower()
    if not probe_host:
        raise ValueError("Give the probe address (host:port) where the live check connects.")
    if not 0 < int(probe_port) < 65536:
        raise ValueError(f"{probe_port} is not a TCP port.")
    if int(wave) < 1:
        raise ValueError("Waves are numbered from 1.")
    with transaction.atomic():
        binding = Binding.objects.create(
            project=certificate.project,
            certificate=certificate,
            target=target,
            sni_names=names,
            probe_host=probe_host,
            probe_port=int(probe_port),
            wave=int(wave),
            auto_redeploy=auto_redeploy,
        )
        record(
            actor,
            "binding.create",
            binding,
            certificate=certificate.name,
            target_name=target.name,
            sni_names=names,
            probe=binding.probe_address,
            wave=binding.wave,
            auto_redeploy=auto_redeploy,
        )
    return binding


# --- Starting, continuing, cancelling, rolling back --------------------------------------------


def start_deployment(
    actor,
    certificate: Certificate,
    version: CertificateVersion | None = None,
    *,
    bindings=None,
    pause_between_waves: bool = False,
    reason: str = "",
    trigger: str = "manual",
    enqueue_job: bool = True,
) -> Deployment:
    """Roll version (default: the current one) out over bindings (default: all of them).

    ValueError with a sentence when there is nothing to deploy, the version is unusable or
    another rollout of these bindings is still under way. The job is enqueued on the "deploy"
    queue after commit; enqueue_job=False leaves it PENDING for the caller to run_deployment().
    """
    require(actor, "deployment.run", certificate)
    version = version or certificate.current_version
    return _start(
        actor,
        certificate,
        version,
        bindings,
        pause_between_waves=pause_between_waves,
        reason=reason,
        trigger=trigger,
        is_rollback=False,
        enqueue_job=enqueue_job,
    )


def continue_deployment(actor, deployment: Deployment, *, enqueue_job: bool = True) -> Deployment:
    """Let a rollout paused between waves go on with the next wave."""
    require(actor, "deployment.run", deployment)
    with transaction.atomic():
        moved = Deployment.objects.filter(pk=deployment.pk, state=State.PAUSED).update(
            state=State.PENDING
        )
        if not moved:
            raise ValueError("Only a rollout paused between waves can be continued.")
        deployment.refresh_from_db()
        record(actor, "deployment.continue", deployment, next_wave=deployment.current_wave + 1)
        if enqueue_job:
            _enqueue(deployment)
    return deployment


def cancel_deployment(actor, deployment: Deployment, reason: str) -> Deployment:
    """Stop a rollout: steps not started are skipped; a running worker stops at the next step.

    Bindings already changed keep the version they were verified with.
    """
    require(actor, "deployment.run", deployment)
    with transaction.atomic():
        moved = Deployment.objects.filter(pk=deployment.pk, state__in=ACTIVE_STATES).update(
            state=State.CANCELLED, finished_at=timezone.now()
        )
        if not moved:
            raise ValueError("This rollout has already finished.")
        deployment.steps.filter(state__in=(Step.WAITING, Step.AWAITING_LIVE_CHECK)).update(
            state=Step.SKIPPED, error="Cancelled before this binding was changed."
        )
        deployment.refresh_from_db()
        record(actor, "deployment.cancel", deployment, reason=reason)
    return deployment


def previous_deployed_version(certificate: Certificate) -> CertificateVersion | None:
    """The version the bindings served before the one they serve now, per the rollout history.

    "Now" is the version most bindings have; "before" is what the steps of the rollout that
    brought it found there, or else the last other version a rollout put in place.
    """
    deployed = Counter(
        certificate.bindings.exclude(deployed_version=None).values_list(
            "deployed_version", flat=True
        )
    )
    if not deployed:
        return None
    current_id = deployed.most_common(1)[0][0]
    brought = (
        Deployment.objects.filter(
            certificate=certificate, version_id=current_id, state=State.SUCCEEDED
        )
        .order_by("-created_at", "-id")
        .first()
    )
    if brought is not None:
        before = Counter(
            brought.steps.exclude(previous_version=None)
            .exclude(previous_version_id=current_id)
            .values_list("previous_version", flat=True)
        )
        if before:
            return CertificateVersion.objects.get(pk=before.most_common(1)[0][0])
    earlier = (
        Deployment.objects.filter(certificate=certificate, state=State.SUCCEEDED)
        .exclude(version_id=current_id)
        .order_by("-created_at", "-id")
        .select_related("version")
        .first()
    )
    return earlier.version if earlier is not None else None


def rollback_certificate(
    actor, certificate: Certificate, reason: str, *, enqueue_job: bool = True
) -> Deployment:
    """Re-deploy the previously deployed version to all bindings, verified like any rollout."""
    require(actor, "deployment.rollback", certificate)
    if not (reason or "").strip():
        raise ValueError("Say why you roll back; the reason goes into the audit log.")
    version = previous_deployed_version(certificate)
    if version is None:
        raise ValueError(
            f"No earlier deployed version of “{certificate.name}” is known, so there is "
            "nothing to roll back to."
        )
    return _start(
        actor,
        certificate,
        version,
        None,
        pause_between_waves=False,
        reason=reason.strip(),
        trigger="rollback",
        is_rollback=True,
        enqueue_job=enqueue_job,
    )


def _start(
    actor,
    certificate,
    version,
    bindings,
    *,
    pause_between_waves,
    reason,
    trigger,
    is_rollback,
    enqueue_job,
) -> Deployment:
    if version is None:
        raise ValueError(f"“{certificate.name}” has no version to deploy yet.")
    if version.certificate_id != certificate.pk:
        raise ValueError("That version belongs to another certificate.")
    if version.status == CertificateVersion.Status.REVOKED:
        raise ValueError("That version is revoked; deploying it would break clients.")
    if version.is_expired():
        raise ValueError("That version has expired; deploying it would break clients.")
    bindings = list(
        certificate.bindings.all() if bindings is None else bindings
    )  # evaluated once: the steps are these bindings
    if not bindings:
        raise ValueError(
            f"“{certificate.name}” has no bindings: add one (a target and the names it "
            "serves) before deploying."
        )
    if any(b.certificate_id != certificate.pk for b in bindings):
        raise ValueError("A chosen binding belongs to another certificate.")
    with transaction.atomic():
        _supersede_awaiting(bindings)
        busy = (
            DeploymentStep.objects.filter(
                binding__in=bindings, state__in=OPEN_STEPS, deployment__state__in=ACTIVE_STATES
            )
            .select_related("deployment")
            .first()
        )
        if busy is not None:
            raise ValueError(
                f"Deployment #{busy.deployment_id} of these bindings is still "
                f"{busy.deployment.get_state_display().lower()}: let it finish or cancel it first."
            )
        deployment = Deployment.objects.create(
            project=certificate.project,
            certificate=certificate,
            version=version,
            is_rollback=is_rollback,
            pause_between_waves=pause_between_waves,
            reason=reason,
            trigger=trigger,
            started_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
        DeploymentStep.objects.bulk_create(
            [
                DeploymentStep(
                    deployment=deployment,
                    binding=b,
                    wave=b.wave,
                    previous_version_id=b.deployed_version_id,
                )
                for b in bindings
            ]
        )
        record(
            actor,
            "deployment.rollback" if is_rollback else "deployment.start",
            deployment,
            reason=reason,
            certificate=certificate.name,
            version=version.sha256,
            trigger=trigger,
            bindings=[b.pk for b in bindings],
            waves=sorted({b.wave for b in bindings}),
            pause_between_waves=pause_between_waves,
        )
        if enqueue_job:
            _enqueue(deployment)
    return deployment


def _supersede_awaiting(bindings) -> None:
    """A manual install still awaited is replaced by the new rollout of the same binding."""
    waiting = DeploymentStep.objects.filter(
        binding__in=bindings,
        state=Step.AWAITING_LIVE_CHECK,
        deployment__state__in=ACTIVE_STATES,
    )
    deployment_ids = set(waiting.values_list("deployment_id", flat=True))
    waiting.update(state=Step.SKIPPED, error="Superseded by a newer rollout.")
    for deployment in Deployment.objects.filter(pk__in=deployment_ids):
        settle_if_complete(deployment)


def _enqueue(deployment: Deployment) -> None:
    enqueue(
        "deployments.jobs.run_deployment",
        deployment.pk,
        queue="deploy",
        job_timeout=job_timeout(),
    )


def resume_stalled() -> list[int]:
    """Enqueue rollouts whose worker died (stale heartbeat) or whose job never arrived."""
    cutoff = timezone.now() - stale_after()
    stalled = (
        Deployment.objects.filter(
            Q(state=State.PENDING, created_at__lt=cutoff)
            | Q(state=State.RUNNING)
            & (Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at=None, created_at__lt=cutoff))
        )
        .filter(steps__state__in=OPEN_STEPS)
        .distinct()
    )
    ids = list(stalled.values_list("pk", flat=True))
    for pk in ids:
        enqueue("deployments.jobs.run_deployment", pk, queue="deploy", job_timeout=job_timeout())
    return ids


# --- Notifications ------------------------------------------------------------------------------


def notify_failure(deployment: Deployment) -> None:
    """Tell the certificate's audience an automatic rollout failed: audit event + notice."""
    record(
        None,
        "deployment.failed",
        deployment,
        certificate=deployment.certificate.name,
        owner=deployment.certificate.label_owner,
        state=deployment.state,
        trigger=deployment.trigger,
        error=deployment.last_error,
    )
    certificate = deployment.certificate
    message = f"Automatic deployment #{deployment.pk} {deployment.get_state_display().lower()}"
    if deployment.last_error:
        message += f": {deployment.last_error}"
    try:
        notify_event(
            certificate.project, certificate, NotificationLog.Kind.DEPLOYMENT_FAILED, message
        )
    except Exception:  # a notification problem must not hide the failed rollout
        logger.exception("Could not send the failure notice for deployment %s", deployment.pk)


def fetch_url_for(step: DeploymentStep) -> str | None:
    """The short-lived, single-use URL a webhook receiver may fetch the bundle from."""
    from deployments.grants import grant_url

    return grant_url(step)


def mark_deployed(binding: Binding, version: CertificateVersion) -> None:
    binding.deployed_version = version
    binding.deployed_at = timezone.now()
    binding.save(update_fields=["deployed_version", "deployed_at"])


def record_finish(deployment: Deployment) -> None:
    steps = deployment.steps.order_by("wave", "id").values("binding_id", "wave", "state", "error")
    record(
        None,
        "deployment.finish",
        deployment,
        state=deployment.state,
        version=deployment.version.sha256,
        error=deployment.last_error,
        steps=[{k: v for k, v in s.items() if v != ""} for s in steps],
    )


def settle_if_complete(deployment: Deployment) -> bool:
    """End a RUNNING rollout whose last steps were manual installs the live check confirmed."""
    if deployment.steps.filter(state__in=(*OPEN_STEPS, Step.AWAITING_LIVE_CHECK)).exists():
        return False
    now = timezone.now()
    all_done = not deployment.steps.exclude(state=Step.DONE).exists()
    state, error = (
        (State.SUCCEEDED, "")
        if all_done
        else (State.CANCELLED, "Superseded by a newer rollout before every binding was live.")
    )
    if not Deployment.objects.filter(pk=deployment.pk, state=State.RUNNING).update(
        state=state, last_error=error, finished_at=now, heartbeat_at=now
    ):
        return False
    deployment.refresh_from_db()
    record_finish(deployment)
    return True


def mark_live(step: DeploymentStep) -> None:
    """The live check saw a manual step's version served: the binding is deployed."""
    moved = DeploymentStep.objects.filter(pk=step.pk, state=Step.AWAITING_LIVE_CHECK).update(
        state=Step.DONE, finished_at=timezone.now()
    )
    if not moved:
        return
    deployment = step.deployment
    mark_deployed(step.binding, deployment.version)
    record(
        None,
        "deployment.live",
        deployment,
        binding=step.binding_id,
        version=deployment.version.sha256,
    )
    settle_if_complete(deployment)


# --- Reporting ----------------------------------------------------------------------------------


def deployment_as_json(deployment: Deployment) -> dict:
    """The JSON shape of a rollout (`deploy --json`): state, version and one entry per step."""
    steps = deployment.steps.select_related("binding__target").order_by("wave", "id")
    return {
        "deployment": deployment.pk,
        "certificate": deployment.certificate.name,
        "version": deployment.version.sha256,
        "state": deployment.state,
        "is_rollback": deployment.is_rollback,
        "trigger": deployment.trigger,
        "error": deployment.last_error or None,
        "steps": [
            {
                "binding": step.binding_id,
                "target": step.binding.target.name,
                "sni_names": step.binding.sni_names,
                "probe": step.binding.probe_address,
                "wave": step.wave,
                "state": step.state,
                "summary": step.summary or None,
                "error": step.error or None,
            }
            for step in steps
        ],
    }
