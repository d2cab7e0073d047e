"""Second factors: TOTP enrolment, recovery codes, the two-step sign-in, and the MFA policy.

Signing in is two steps for a user with a second factor: the password (or the
identity provider) proves the first, `begin_login` parks the user in the session
without logging them in, and `finish_login` logs them in only after a valid code.
A user who has not enrolled gets the rights of the roles that need no second
factor (see backends.project_permissions) and a banner asking them to enrol.
"""

import secrets
import time
from base64 import b32encode
from dataclasses import dataclass
from urllib.parse import quote, urlencode

import django_otp
import segno
from django.conf import settings
from django.contrib import auth
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import redirect
from django.utils import timezone

from certconsole.access.models import RecoveryCode, RecoveryCodeDevice, TotpDevice
from certconsole.access.roles import Role
from certconsole.audit import record

PENDING_KEY = "certconsole_mfa_pending"
VERIFIED_AT_KEY = "certconsole_second_factor_at"
WITHHELD_KEY = "certconsole_mfa_withheld"
# A parked sign-in must be finished within this time, with at most this many wrong codes.
PENDING_SECONDS = 300
MAX_PENDING_FAILURES = 5
RECOVERY_CODE_COUNT = 10


class MfaError(ValueError):
    """A code was wrong, replayed, spent, or the sign-in waited too long."""


# --- devices -------------------------------------------------------------------------------


def totp_devices(user):
    return TotpDevice.objects.filter(user=user, confirmed=True)


def has_second_factor(user) -> bool:
    """True when the user has enrolled an authenticator app (recovery codes alone do not count)."""
    if not getattr(user, "is_authenticated", False):
        return False
    return totp_devices(user).exists()


def start_enrolment(user) -> TotpDevice:
    """A new, unconfirmed TOTP device with a fresh secret (replacing an unfinished enrolment)."""
    TotpDevice.objects.filter(user=user, confirmed=False).delete()
    device = TotpDevice(user=user, name="Authenticator app", confirmed=False)
    device.set_key(secrets.token_bytes(20))
    device.save()
    return device


def pending_enrolment(user) -> TotpDevice | None:
    return TotpDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()


def secret_base32(device: TotpDevice) -> str:
    return b32encode(device.bin_key).decode().rstrip("=")


def provisioning_uri(device: TotpDevice) -> str:
    """The otpauth:// URI authenticator apps read from the QR code."""
    issuer = settings.CERTCONSOLE_MFA_ISSUER
    label = quote(f"{issuer}:{device.user.get_username()}")
    params = {"secret": secret_base32(device), "issuer": issuer, "digits": device.digits}
    params["period"] = device.step
    return f"otpauth://totp/{label}?{urlencode(params)}"


def qr_svg(device: TotpDevice) -> str:
    """The enrolment QR code as an inline SVG element (no script, fine under the CSP)."""
    qr = segno.make(provisioning_uri(device), error="m")
    return qr.svg_inline(scale=5, dark="#111", light="#fff", title="Scan with your authenticator")


def confirm_enrolment(request, device: TotpDevice, code: str) -> list[str]:
    """Confirm the device with its first code; returns fresh recovery codes (shown once)."""
    user = request.user
    ok, throttled = _try(device, code)
    if not ok:
        record(user, "mfa.enrol_failed", user, why="throttled" if throttled else "wrong code")
        raise MfaError(throttled or WRONG_CODE)
    with transaction.atomic():
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        record(user, "mfa.enrol", user, device="totp")
        codes = new_recovery_codes(user, audit=False)
    _verified(request, device)
    return codes


def remove_device(request, device: TotpDevice) -> None:
    """Remove an authenticator; the last one takes the recovery codes with it."""
    user = request.user
    with transaction.atomic():
        device.delete()
        record(user, "mfa.remove", user, device="totp")
        if not totp_devices(user).exists():
            RecoveryCodeDevice.objects.filter(user=user).delete()
    request.session.pop(VERIFIED_AT_KEY, None)
    request.session.pop(django_otp.DEVICE_ID_SESSION_KEY, None)
    user.otp_device = None  # this request too is no longer verified
    refresh_withheld(request)


def new_recovery_codes(user, audit: bool = True) -> list[str]:
    """Replace the user's recovery codes; the old ones stop working at once."""
    codes = [_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    with transaction.atomic():
        RecoveryCodeDevice.objects.filter(user=user).delete()
        device = RecoveryCodeDevice.objects.create(user=user, name="Recovery codes")
        RecoveryCode.objects.bulk_create(
            RecoveryCode(device=device, digest=RecoveryCode.digest_of(c)) for c in codes
        )
        if audit:
            record(user, "mfa.recovery_codes_new", user, count=len(codes))
    return codes


def recovery_codes_left(user) -> int:
    return RecoveryCode.objects.filter(device__user=user, used_at__isnull=True).count()


def _recovery_code() -> str:
    raw = b32encode(secrets.token_bytes(10)).decode().lower()
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


# --- checking a code -----------------------------------------------------------------------


def check_code(user, code: str, purpose: str, target=None):
    """The device that accepts code (authenticator first, then recovery codes), else MfaError.

    Failures and every use of a recovery code are audited.
    """
    code = (code or "").strip()
    target = target if target is not None else user
    throttled = ""
    if code.replace(" ", "").isdigit():
        for device in totp_devices(user):
            ok, throttled = _try(device, code)
            if ok:
                return device
        why, message = (
            ("throttled", throttled) if throttled else ("wrong or reused code", WRONG_CODE)
        )
    else:
        recovery = RecoveryCodeDevice.objects.filter(user=user, confirmed=True).first()
        if recovery is not None:
            ok, throttled = _try(recovery, code)
            if ok:
                left = recovery_codes_left(user)
                record(user, "mfa.recovery_code_used", target, purpose=purpose, left=left)
                return recovery
        why = "throttled" if throttled else "recovery code unknown or already used"
        message = throttled or WRONG_RECOVERY_CODE
    record(user, "mfa.failed", target, purpose=purpose, why=why)
    raise MfaError(message)


WRONG_CODE = "That code is not valid or was already used: wait for the next code and try again."
WRONG_RECOVERY_CODE = "That recovery code is not valid or has already been used."


def _try(device, code: str) -> tuple[bool, str]:
    """(accepted, message when refused without looking because of too many wrong codes)."""
    allowed, info = device.verify_is_allowed()
    if not allowed:
        wait = max(1, int((info["locked_until"] - timezone.now()).total_seconds()) + 1)
        return False, f"Too many wrong codes: wait {wait} seconds, then try a new code."
    return device.verify_token(code), ""


# --- the two-step sign-in ------------------------------------------------------------------


def begin_login(request, user, backend: str, next_url: str) -> HttpResponse:
    """Log in at once without a second factor; otherwise park the user and ask for a code."""
    if not has_second_factor(user):
        auth.login(request, user, backend=backend)  # sessions.on_login notes withheld roles
        return redirect(next_url)
    request.session.cycle_key()
    request.session[PENDING_KEY] = {
        "user": user.pk,
        "backend": backend,
        "next": next_url,
        "at": int(time.time()),
        "failures": 0,
    }
    return redirect("mfa-verify")


def pending_user(request):
    """The user parked by begin_login, or None when there is none or it has expired."""
    pending = request.session.get(PENDING_KEY)
    if not isinstance(pending, dict) or time.time() - pending.get("at", 0) > PENDING_SECONDS:
        request.session.pop(PENDING_KEY, None)
        return None
    return auth.get_user_model().objects.filter(pk=pending["user"], is_active=True).first()


def finish_login(request, user, code: str) -> str:
    """Check the code, then log the parked user in; returns where to go next."""
    pending = request.session[PENDING_KEY]
    try:
        device = check_code(user, code, purpose="sign-in")
    except MfaError:
        pending["failures"] = pending.get("failures", 0) + 1
        if pending["failures"] >= MAX_PENDING_FAILURES:
            request.session.pop(PENDING_KEY, None)
        else:
            request.session[PENDING_KEY] = pending
        raise
    request.session.pop(PENDING_KEY, None)
    user.otp_device = device  # django-otp's login signal stores it in the session
    auth.login(request, user, backend=pending["backend"])
    _verified(request, device)
    return pending["next"]


def step_up(request, code: str, purpose: str, target=None) -> None:
    """Prove the second factor again in a signed-in session (key export, role changes)."""
    device = check_code(request.user, code, purpose=purpose, target=target)
    _verified(request, device)


def _verified(request, device) -> None:
    django_otp.login(request, device)
    request.session[VERIFIED_AT_KEY] = int(time.time())
    refresh_withheld(request)


def second_factor_fresh(request, seconds: int | None = None) -> bool:
    """True when this session proved its second factor at most `seconds` ago."""
    if seconds is None:
        seconds = settings.CERTCONSOLE_SECOND_FACTOR_FRESH_SECONDS
    at = request.session.get(VERIFIED_AT_KEY)
    if not isinstance(at, int | float):
        return False
    return 0 <= time.time() - at <= seconds


def needs_step_up(request) -> bool:
    """A user with a second factor must have proven it recently for sensitive acts."""
    return has_second_factor(request.user) and not second_factor_fresh(request)


# --- MFA policy ----------------------------------------------------------------------------


def satisfied(user) -> bool:
    """Has the user proven a second factor? In a request: this session; elsewhere: enrolled."""
    is_verified = getattr(user, "is_verified", None)
    if callable(is_verified):
        return bool(is_verified())
    return has_second_factor(user)


def refresh_withheld(request, user=None) -> None:
    """Remember in the session which roles the user cannot use until they prove a second factor.

    The banner reads it; permissions themselves are always computed afresh per request.
    """
    from certconsole.access.backends import forget_permissions, withheld_roles

    user = user or getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return
    forget_permissions(user)
    withheld = sorted(withheld_roles(user))
    request.session[WITHHELD_KEY] = withheld


def context(request) -> dict:
    """Template context: the roles the banner asks the user to enrol for (read from the session)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    withheld = request.session.get(WITHHELD_KEY) or []
    labels = [Role(r).label for r in withheld if r in Role.values]
    return {"mfa_withheld_roles": labels}


@dataclass
class SecurityState:
    """What the security page shows about the user's second factors."""

    devices: list
    recovery_left: int
    pending: TotpDevice | None


def state_for(user) -> SecurityState:
    return SecurityState(
        devices=list(totp_devices(user)),
        recovery_left=recovery_codes_left(user),
        pending=pending_enrolment(user),
    )
