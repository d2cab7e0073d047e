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

import hashlib
import logging
import os
import time
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
from deployments.bundles import bundle_for, intermediates
from deployments.drivers import Driver, DriverError, PushResult, driver_class, get_driver
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
VERIFY_STREAK = 3  # consecutive handshakes that must show the new leaf
PUSH_ATTEMPTS = 2  # a transient DriverError is retried once
AUTOMATIC_TRIGGERS = ("renewal",)  # nobody watches these: failures notify the owner


def verify_timeout() -> float:
    return float(getattr(settings, "DEPLOY_VERIFY_TIMEOUT", 15.0))


def probe_timeout() -> float:
    return float(getattr(settings, "DEPLOY_PROBE_TIMEOUT", 5.0))


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


# --- The job body -------------------------------------------------------------------------------


class _Cancelled(Exception):
    """The row left RUNNING under the worker (cancelled by a person)."""


def run_deployment(deployment_id: int) -> str | None:
    """Run (or resume) one rollout; returns its state afterwards, None if another worker has it."""
    deployment = _claim(deployment_id)
    if deployment is None:
        return None
    try:
        return _Rollout(deployment).run()
    except _Cancelled:
        return State.CANCELLED


def _claim(deployment_id: int) -> Deployment | None:
    """PENDING → RUNNING, or take over a RUNNING one whose worker stopped beating."""
    deployment = Deployment.objects.filter(pk=deployment_id).first()
    if deployment is None:
        return None
    now = timezone.now()
    resumed = deployment.state == State.RUNNING
    if resumed:
        beat = deployment.heartbeat_at or deployment.started_at or deployment.created_at
        if beat > now - stale_after():
            return None
        if not deployment.steps.filter(state__in=OPEN_STEPS).exists():
            return None  # only manual installs left: the monitoring check finishes those
    elif deployment.state != State.PENDING:
        return None
    claimed = Deployment.objects.filter(
        pk=deployment_id, state=deployment.state, heartbeat_at=deployment.heartbeat_at
    ).update(state=State.RUNNING, heartbeat_at=now, started_at=deployment.started_at or now)
    if not claimed:
        return None
    deployment.refresh_from_db()
    if resumed:
        record(None, "deployment.resume", deployment, wave=deployment.current_wave)
    return deployment


class _Rollout:
    """One worker's pass over a claimed deployment."""

    def __init__(self, deployment: Deployment):
        self.deployment = deployment
        self.version = CertificateVersion.objects.select_related("certificate").get(
            pk=deployment.version_id
        )
        self._drivers: dict[int, Driver] = {}
        self._rolling_back = False  # a cancel then waits: half a rollback is worse than none

    def run(self) -> str:
        steps = list(
            self.deployment.steps.select_related(
                "binding__target", "previous_version__certificate"
            ).order_by("wave", "id")
        )
        waves = sorted({s.wave for s in steps})
        ran_a_wave = False
        for wave in waves:
            wave_steps = [s for s in steps if s.wave == wave]
            if all(s.state in SETTLED_STEPS for s in wave_steps):
                continue
            if ran_a_wave and self.deployment.pause_between_waves:
                return self._pause(wave)
            self._touch(current_wave=wave)
            problem = self._run_wave(wave_steps)
            ran_a_wave = True
            if problem is not None:
                later = [s for s in steps if s.wave > wave]
                return self._fail(wave, wave_steps, later, problem)
        return self._finish()

    # Bookkeeping

    def _touch(self, **fields) -> None:
        """Heartbeat (and fields) while the row is still ours; _Cancelled if it is not."""
        fields["heartbeat_at"] = timezone.now()
        updated = Deployment.objects.filter(pk=self.deployment.pk, state=State.RUNNING).update(
            **fields
        )
        if not updated and not self._rolling_back:
            raise _Cancelled
        for name, value in fields.items():
            setattr(self.deployment, name, value)

    def _set_step(self, step: DeploymentStep, state: str, **fields) -> None:
        step.state = state
        for name, value in fields.items():
            setattr(step, name, value)
        step.save(update_fields=["state", *fields])
        self._touch()

    def _end(self, state: str, error: str = "") -> bool:
        now = timezone.now()
        ended = Deployment.objects.filter(pk=self.deployment.pk, state=State.RUNNING).update(
            state=state, last_error=error, finished_at=now, heartbeat_at=now
        )
        self.deployment.refresh_from_db()
        return bool(ended)

    def _pause(self, next_wave: int) -> str:
        moved = Deployment.objects.filter(pk=self.deployment.pk, state=State.RUNNING).update(
            state=State.PAUSED, heartbeat_at=timezone.now()
        )
        if not moved:
            raise _Cancelled
        self.deployment.refresh_from_db()
        record(
            None,
            "deployment.pause",
            self.deployment,
            completed_wave=self.deployment.current_wave,
            next_wave=next_wave,
        )
        return State.PAUSED

    def _finish(self) -> str:
        if self.deployment.steps.filter(state=Step.AWAITING_LIVE_CHECK).exists():
            self._touch()
            return State.RUNNING  # settle_if_complete() ends it when the live check sees it
        if not self._end(State.SUCCEEDED):
            raise _Cancelled
        _record_finish(self.deployment)
        return State.SUCCEEDED

    # Waves and steps

    def _run_wave(self, steps: list[DeploymentStep]) -> str | None:
        """Push and verify each open step; the first problem (a sentence) stops the wave."""
        for step in steps:
            if step.state in SETTLED_STEPS:
                continue
            if step.state in (Step.FAILED, Step.ROLLED_BACK):  # resumed mid-rollback
                return step.error or self.deployment.last_error or "An earlier run failed here."
            problem = self._deploy_step(step)
            if problem is not None:
                return problem
        return None

    def _deploy_step(self, step: DeploymentStep) -> str | None:
        binding = step.binding
        self._touch()  # a rollout cancelled meanwhile changes nothing more
        self._set_step(
            step,
            Step.PUSHING,
            started_at=step.started_at or timezone.now(),
            attempts=step.attempts + 1,
            error="",
        )
        try:
            result = self._push(binding.target, self.version, step)
        except DriverError as exc:
            details = {**step.details, "pushed": False, "push": exc.details}
            self._set_step(
                step,
                Step.FAILED,
                error=f"{binding.target.name}: {exc.message}",
                details=details,
                finished_at=timezone.now(),
            )
            return step.error
        details = {**step.details, "pushed": True, "push": result.details}
        if result.awaiting_live_check:
            self._set_step(step, Step.AWAITING_LIVE_CHECK, summary=result.summary, details=details)
            return None
        self._set_step(step, Step.VERIFYING, summary=result.summary, details=details)
        problem = verify_binding(binding, self.version)
        if problem is not None:
            self._set_step(step, Step.FAILED, error=problem, finished_at=timezone.now())
            return problem
        self._set_step(step, Step.DONE, finished_at=timezone.now())
        _mark_deployed(binding, self.version)
        return None

    def _driver(self, target: Target) -> Driver:
        if target.pk not in self._drivers:
            self._drivers[target.pk] = get_driver(target.kind, target.options, target.credentials())
        return self._drivers[target.pk]

    def _push(self, target: Target, version: CertificateVersion, step) -> PushResult:
        """One push with a retry for transient failures; any crash becomes a DriverError."""
        try:
            driver = self._driver(target)
            if driver.needs_private_key and not target.allow_private_key:
                raise DriverError(
                    f"Target “{target.name}” may not receive private keys, but it needs the "
                    "key to serve the certificate.",
                    permanent=True,
                )
            bundle = bundle_for(
                version, include_key=driver.needs_private_key, fetch_url=fetch_url_for(step)
            )
            step.details = {**step.details, "key_sent": bundle.key_pem is not None}
            for attempt in range(1, PUSH_ATTEMPTS + 1):
                try:
                    return driver.push(bundle)
                except DriverError as exc:
                    if exc.permanent or attempt == PUSH_ATTEMPTS:
                        raise
                    logger.info("Retrying push to %s: %s", target, exc.message)
                    time.sleep(0.5)
        except DriverError:
            raise
        except Exception as exc:  # a driver bug must fail the step, not kill the rollout
            logger.exception("Push to target %s crashed", target.pk)
            raise DriverError(f"The {target.kind} driver crashed: {exc!r}", permanent=True) from exc
        raise AssertionError("unreachable")

    # Failure: roll back this wave

    def _fail(self, wave: int, wave_steps, later_steps, problem: str) -> str:
        """Put the previous version back on this wave's changed bindings, skip the rest."""
        self._rolling_back = True
        notes: list[str] = []
        restored = 0
        for step in wave_steps:
            if step.state == Step.WAITING:
                self._set_step(step, Step.SKIPPED, error="Not started: the wave failed earlier.")
                continue
            if step.state == Step.AWAITING_LIVE_CHECK:
                self._set_step(
                    step,
                    Step.SKIPPED,
                    error="The rollout failed: do not install this version here.",
                )
                continue
            changed = step.state in (Step.DONE, Step.PUSHING, Step.VERIFYING) or (
                step.state == Step.FAILED
                and step.details.get("pushed")
                and "rollback" not in step.details
            )
            if not changed:
                continue
            outcome = self._roll_back_step(step)
            if outcome is None:
                restored += 1
            else:
                notes.append(outcome)
        for step in later_steps:
            if step.state == Step.WAITING:
                self._set_step(
                    step, Step.SKIPPED, error=f"Not started: the rollout stopped at wave {wave}."
                )
        error = problem + ("\n" + "\n".join(notes) if notes else "")
        state = State.ROLLED_BACK if restored and not notes else State.FAILED
        self._end(state, error)  # a cancel that came meanwhile keeps its CANCELLED
        _record_finish(self.deployment)
        if self.deployment.trigger in AUTOMATIC_TRIGGERS:
            notify_failure(self.deployment)
        return self.deployment.state

    def _roll_back_step(self, step: DeploymentStep) -> str | None:
        """Push and verify the step's previous version; None when done, else what went wrong."""
        binding = step.binding
        previous = step.previous_version
        where = f"{binding.target.name} ({', '.join(binding.sni_names)})"
        if previous is None:
            note = (
                f"{where}: not rolled back, no earlier version of this binding is known; "
                "it keeps the new version."
            )
            self._set_step(step, step.state, details={**step.details, "rollback": note})
            return note
        try:
            self._push(binding.target, previous, step)
            problem = verify_binding(binding, previous)
        except DriverError as exc:
            problem = exc.message
        if problem is not None:
            note = f"{where}: rolling back to {previous.sha256[:16]}… failed: {problem}"
            self._set_step(
                step,
                Step.FAILED,
                error=(step.error + "\n" if step.error else "") + note,
                details={**step.details, "rollback": "failed"},
            )
            return note
        self._set_step(
            step,
            Step.ROLLED_BACK,
            details={**step.details, "rollback": previous.sha256},
            finished_at=timezone.now(),
        )
        _mark_deployed(binding, previous)
        return None


def fetch_url_for(step: DeploymentStep) -> str | None:
    """The short-lived, single-use URL a webhook receiver may fetch the bundle from."""
    from deployments.grants import grant_url

    return grant_url(step)


def _mark_deployed(binding: Binding, version: CertificateVersion) -> None:
    binding.deployed_version = version
    binding.deployed_at = timezone.now()
    binding.save(update_fields=["deployed_version", "deployed_at"])


def _record_finish(deployment: Deployment) -> None:
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
    _record_finish(deployment)
    return True


def mark_live(step: DeploymentStep) -> None:
    """The live check saw a manual step's version served: the binding is deployed."""
    moved = DeploymentStep.objects.filter(pk=step.pk, state=Step.AWAITING_LIVE_CHECK).update(
        state=Step.DONE, finished_at=timezone.now()
    )
    if not moved:
        return
    deployment = step.deployment
    _mark_deployed(step.binding, deployment.version)
    record(
        None,
        "deployment.live",
        deployment,
        binding=step.binding_id,
        version=deployment.version.sha256,
    )
    settle_if_complete(deployment)


# --- Verification -------------------------------------------------------------------------------


def verify_binding(
    binding: Binding, version: CertificateVersion, *, timeout: float | None = None
) -> str | None:
    """Probe every SNI name of binding until it serves version; None, or what is wrong."""
    deadline = time.monotonic() + (verify_timeout() if timeout is None else timeout)
    expected_chain = {issuer.sha256 for issuer in intermediates(version)}
    for name in binding.sni_names:
        problem = _verify_name(binding, name, version, expected_chain, deadline)
        if problem is not None:
            return problem
    return None


def _verify_name(binding, name, version, expected_chain: set[str], deadline: float) -> str | None:
    where = f"{name} at {binding.probe_address}"
    streak = 0
    started = time.monotonic()
    while True:
        remaining = deadline - time.monotonic()
        result = tlsprobe.probe(
            binding.probe_host,
            binding.probe_port,
            name,
            timeout=max(0.2, min(probe_timeout(), remaining)),
        )
        if result.ok and result.leaf_sha256 == version.sha256:
            streak += 1
            if streak >= VERIFY_STREAK:
                break
            continue
        streak = 0
        if time.monotonic() >= deadline:
            waited = time.monotonic() - started
            if not result.ok:
                return f"{where}: {result.error} (retried for {waited:.1f} s)"
            return (
                f"{where} still serves {result.leaf_sha256[:16]}…, not the version "
                f"{version.sha256[:16]}… (checked for {waited:.1f} s)."
            )
        time.sleep(0.02)
    if not result.hostname_matches:
        return f"{where}: the certificate served does not cover the name {name}."
    served = {hashlib.sha256(der).hexdigest() for der in result.chain_der[1:]}
    missing = expected_chain - served
    if missing:
        return (
            f"{where} serves the certificate without {len(missing)} of its intermediate "
            "certificate(s): the chain is incomplete and many clients will reject it."
        )
    return None


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
