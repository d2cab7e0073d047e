"""Second-factor test helpers: enrol a device, compute codes as an authenticator app does."""

import time
from base64 import b32decode

from django.urls import reverse
from django_otp.oath import TOTP

from certconsole.access import mfa
from certconsole.access.models import TotpDevice
from tests.conftest import PASSWORD


def totp_code(key: bytes, at: float | None = None) -> str:
    """The 6-digit code an authenticator app shows for this secret (now, or at `at`)."""
    totp = TOTP(key, step=30, t0=0, digits=6)
    totp.time = time.time() if at is None else at
    return f"{totp.token():06d}"


def key_from_secret(secret: str) -> bytes:
    """The raw key from the base32 secret shown under the QR code."""
    return b32decode(secret + "=" * (-len(secret) % 8))


def enrol(user) -> bytes:
    """A confirmed TOTP device for user (set up directly); returns its key."""
    device = mfa.start_enrolment(user)
    device.confirmed = True
    device.save()
    return device.bin_key


def unused_code(user) -> str:
    """A valid code the device has not accepted yet: the next time step if the current one is spent.

    For setting a scene only; replay itself is tested with totp_code().
    """
    device = TotpDevice.objects.get(user=user, confirmed=True)
    now_t = int(time.time()) // 30
    if device.last_t < now_t:
        return totp_code(device.bin_key)
    if device.last_t == now_t:
        return totp_code(device.bin_key, at=time.time() + 30)
    # Both accepted steps are used up: let this scene start afresh.
    TotpDevice.objects.filter(pk=device.pk).update(last_t=now_t - 1)
    return totp_code(device.bin_key)


def sign_in(client, username: str, code: str | None = None, user=None):
    """Sign in through the real pages: password, then the code when the user has a device."""
    response = client.post(reverse("login"), {"username": username, "password": PASSWORD})
    if code is None and user is not None:
        code = unused_code(user)
    if code is not None:
        assert response.status_code == 302 and response["Location"] == reverse("mfa-verify")
        response = client.post(reverse("mfa-verify"), {"code": code})
    return response
