"""The rollout engine: one worker's pass over a claimed deployment, wave by wave.

Each push goes through the target's driver and is verified by live TLS handshakes
(deployments/tlsprobe.py); a failed wave is rolled back. The procedures that start,
continue, cancel and roll back deployments live in deployments/rollout.py.
"""

import hashlib
import logging
import time

from django.conf import settings
from django.utils import timezone

from certconsole.audit import record
from deployments import tlsprobe
from deployments.bundles import bundle_for, intermediates
from deployments.drivers import Driver, DriverError, PushResult, get_driver
from deployments.models import Binding, Deployment, DeploymentStep, Target
from deployments.rollout import (
    AUTOMATIC_TRIGGERS,
    OPEN_STEPS,
    SETTLED_STEPS,
    fetch_url_for,
    mark_deployed,
    notify_failure,
    record_finish,
    stale_after,
)
from inventory.models import CertificateVersion

VERIFY_STREAK = 3  # consecutive handshakes that must show the new leaf
PUSH_ATTEMPTS = 2  # a transient DriverError is retried once


def verify_timeout() -> float:
    return float(getattr(settings, "DEPLOY_VERIFY_TIMEOUT", 15.0))


def probe_timeout() -> float:
    return float(getattr(settings, "DEPLOY_PROBE_TIMEOUT", 5.0))


logger = logging.getLogger(__name__)

State = Deployment.State
Step = DeploymentStep.State


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
        record_finish(self.deployment)
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
        mark_deployed(binding, self.version)
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
        record_finish(self.deployment)
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
        mark_deployed(binding, previous)
        return None


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
