"""Second factors: enrolment with a QR code, two-step sign-in, recovery codes, the MFA policy,
and fresh codes for key export and role changes. Codes are computed from the enrolled secret."""

import re
import time

import pytest
from django.urls import reverse

from certconsole import keyring
from certconsole.access import mfa
from certconsole.access.models import Membership, MfaPolicy, RecoveryCode, TotpDevice
from certconsole.audit.models import AuditEvent
from tests.access.mfa_support import enrol, key_from_secret, sign_in, totp_code, unused_code
from tests.conftest import PASSWORD

DASHBOARD = "/"


@pytest.fixture
def mfa_policy_on(settings):
    """The product default: KeyCustodian and ProjectAdmin need a second factor."""
    settings.CERTCONSOLE_MFA_DEFAULT_ROLES = ["keycustodian", "projectadmin"]


def actions():
    return list(AuditEvent.objects.order_by("id").values_list("action", flat=True))


def unthrottle(user):
    """django-otp makes the next try wait after a wrong code; the tests do not sleep."""
    TotpDevice.objects.filter(user=user).update(throttling_failure_count=0)


def export_data(**extra):
    return {"format": "key", "reason": "CHG-77 new load balancer", **extra}


def test_enrolment_shows_a_qr_code_and_confirms_with_a_code_from_the_secret(client_for, personas):
    client = client_for("viewer")
    page = client.get(reverse("mfa-enrol")).content.decode()
    assert "<svg" in page and "Scan this code" in page
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)
    key = key_from_secret(secret)

    response = client.post(reverse("mfa-enrol"), {"code": totp_code(key)})

    assert response.status_code == 200
    codes = response.context["codes"]
    assert len(codes) == 10 and all(code in response.content.decode() for code in codes)
    device = TotpDevice.objects.get(user=personas["viewer"])
    assert device.confirmed and device.bin_key == key
    assert "mfa.enrol" in actions()
    assert mfa.second_factor_fresh(type("R", (), {"session": client.session})())


def test_the_secret_and_recovery_codes_are_not_stored_in_clear(client_for, personas):
    key = enrol(personas["viewer"])
    device = TotpDevice.objects.get(user=personas["viewer"])
    assert key.hex() not in device.encrypted_key
    assert keyring.decrypt(device.encrypted_key) == key
    codes = mfa.new_recovery_codes(personas["viewer"])
    stored = set(RecoveryCode.objects.values_list("digest", flat=True))
    assert not {c for c in codes} & stored
    assert {RecoveryCode.digest_of(c) for c in codes} == stored


def test_a_wrong_code_at_enrolment_is_refused_and_audited(client_for, personas):
    client = client_for("viewer")
    client.get(reverse("mfa-enrol"))
    response = client.post(reverse("mfa-enrol"), {"code": "000000"})
    assert response.status_code == 400
    assert "not valid" in response.content.decode()
    assert not TotpDevice.objects.filter(user=personas["viewer"], confirmed=True).exists()
    assert "mfa.enrol_failed" in actions()


def test_sign_in_logs_in_only_after_the_second_factor(client, personas):
    user = personas["viewer"]
    key = enrol(user)
    response = client.post(reverse("login"), {"username": "viewer", "password": PASSWORD})
    assert response["Location"] == reverse("mfa-verify")
    # Parked, not signed in: every page still asks to sign in.
    assert client.get(DASHBOARD).status_code == 302
    assert "_auth_user_id" not in client.session

    wrong = client.post(reverse("mfa-verify"), {"code": "123456"})
    assert wrong.status_code == 400 and "not valid" in wrong.content.decode()
    assert "_auth_user_id" not in client.session
    failure = AuditEvent.objects.get(action="mfa.failed")
    assert failure.detail["purpose"] == "sign-in"

    unthrottle(user)
    response = client.post(reverse("mfa-verify"), {"code": totp_code(key)})
    assert response.status_code == 302
    assert client.get(DASHBOARD).status_code == 200
    assert client.session["otp_device_id"]


def test_a_replayed_code_is_refused(client, personas):
    user = personas["viewer"]
    key = enrol(user)
    code = totp_code(key)
    assert sign_in(client, "viewer", code).status_code == 302
    client.post(reverse("logout"))

    response = sign_in(client, "viewer", code)

    assert response.status_code == 400
    assert "already used" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="mfa.failed").count() == 1


def test_too_many_wrong_codes_end_the_sign_in(client, personas):
    user = personas["viewer"]
    enrol(user)
    client.post(reverse("login"), {"username": "viewer", "password": PASSWORD})
    for _ in range(mfa.MAX_PENDING_FAILURES):
        unthrottle(user)
        response = client.post(reverse("mfa-verify"), {"code": "999999"})
    assert response.status_code == 302 and response["Location"] == reverse("login")
    assert client.get(reverse("mfa-verify")).status_code == 302


def test_a_recovery_code_signs_in_once_and_its_use_is_audited(client, personas):
    user = personas["viewer"]
    enrol(user)
    codes = mfa.new_recovery_codes(user)

    assert sign_in(client, "viewer", codes[0].upper()).status_code == 302
    event = AuditEvent.objects.get(action="mfa.recovery_code_used")
    assert event.detail == {"purpose": "sign-in", "left": 9}
    client.post(reverse("logout"))

    response = sign_in(client, "viewer", codes[0])
    assert response.status_code == 400
    assert "already been used" in response.content.decode()
    assert AuditEvent.objects.get(action="mfa.failed").detail["why"].startswith("recovery")


def test_new_recovery_codes_cancel_the_old_ones(client, personas):
    user = personas["viewer"]
    enrol(user)
    old = mfa.new_recovery_codes(user)
    mfa.new_recovery_codes(user)
    assert sign_in(client, "viewer", old[1]).status_code == 400


def test_without_a_second_factor_privileged_roles_are_withheld_with_a_banner(
    client, personas, inventory_cert, mfa_policy_on
):
    sign_in(client, "keycustodian")
    page = client.get(DASHBOARD).content.decode()
    assert "Enrol a second factor to use your KeyCustodian role" in page
    export = reverse("inventory:key-export", args=[inventory_cert.pk])
    assert client.get(export).status_code == 403


def test_after_enrolling_the_role_works_again(client, personas, inventory_cert, mfa_policy_on):
    user = personas["keycustodian"]
    sign_in(client, "keycustodian")
    client.get(reverse("mfa-enrol"))
    key = TotpDevice.objects.get(user=user).bin_key
    client.post(reverse("mfa-enrol"), {"code": totp_code(key)})

    export = reverse("inventory:key-export", args=[inventory_cert.pk])
    assert client.get(export).status_code == 200
    assert "Enrol a second factor" not in client.get(DASHBOARD).content.decode()


def test_a_project_policy_overrides_the_default(client_for, personas, project, inventory_cert):
    MfaPolicy.objects.create(project=project, required_roles=["keycustodian"])
    export = reverse("inventory:key-export", args=[inventory_cert.pk])
    assert client_for("keycustodian").get(export).status_code == 403
    assert client_for("projectadmin").get(export).status_code == 200


def test_a_project_admin_changes_the_policy_and_it_is_audited(client_for, personas, project):
    client = client_for("projectadmin")
    url = reverse("security-mfa-policy", args=["alpha"])
    response = client.post(url, {"required_roles": ["keycustodian"], "reason": "CHG-5"})
    assert response.status_code == 302
    assert MfaPolicy.objects.get(project=project).required_roles == ["keycustodian"]
    event = AuditEvent.objects.get(action="mfa.policy_change")
    assert event.detail["after"] == ["keycustodian"] and event.reason == "CHG-5"
    assert client_for("viewer").post(url, {"required_roles": []}).status_code == 403


def test_key_export_needs_a_code_when_the_second_factor_is_stale(client, personas, inventory_cert):
    user = personas["keycustodian"]
    enrol(user)
    sign_in(client, "keycustodian", user=user)
    session = client.session
    session[mfa.VERIFIED_AT_KEY] = int(time.time()) - 600
    session.save()
    export = reverse("inventory:key-export", args=[inventory_cert.pk])
    assert "Code from your authenticator app" in client.get(export).content.decode()

    missing = client.post(export, export_data())
    assert missing.status_code == 400
    wrong = client.post(export, export_data(otp_token="000000"))
    assert wrong.status_code == 400 and "not valid" in wrong.content.decode()
    assert AuditEvent.objects.get(action="mfa.failed").detail["purpose"] == "key export"
    assert not AuditEvent.objects.filter(action="certificate.export_key").exists()

    unthrottle(user)
    response = client.post(export, export_data(otp_token=unused_code(user)))
    assert response.status_code == 200
    assert b"PRIVATE KEY" in response.content
    assert AuditEvent.objects.filter(action="certificate.export_key").count() == 1


def test_key_export_without_a_second_factor_is_unchanged(client_for, inventory_cert):
    export = reverse("inventory:key-export", args=[inventory_cert.pk])
    response = client_for("keycustodian").get(export)
    assert "Code from your authenticator app" not in response.content.decode()


def test_role_changes_need_a_fresh_second_factor(client, personas, project):
    admin = personas["projectadmin"]
    enrol(admin)
    sign_in(client, "projectadmin", user=admin)
    session = client.session
    session[mfa.VERIFIED_AT_KEY] = int(time.time()) - 600
    session.save()
    add = reverse("access:member-add", args=["alpha"])
    data = {"username": "outsider", "role": "auditor", "reason": "review"}

    response = client.post(add, data)
    assert response.status_code == 302 and response["Location"].startswith(reverse("mfa-confirm"))
    assert not Membership.objects.filter(user=personas["outsider"], project=project).exists()

    confirm = client.post(
        reverse("mfa-confirm"), {"code": unused_code(admin), "next": "/projects/alpha/"}
    )
    assert confirm.status_code == 302
    assert client.post(add, data).status_code == 302
    assert Membership.objects.filter(user=personas["outsider"], project=project).exists()


def test_removing_the_authenticator_needs_a_code_and_is_audited(client, personas):
    user = personas["viewer"]
    enrol(user)
    mfa.new_recovery_codes(user)
    sign_in(client, "viewer", user=user)
    session = client.session
    session[mfa.VERIFIED_AT_KEY] = int(time.time()) - 600
    session.save()
    device = TotpDevice.objects.get(user=user)
    url = reverse("mfa-remove", args=[device.pk])
    page = client.get(reverse("security")).content.decode()
    assert (
        "Recovery codes left: <strong>10</strong>" in page and 'placeholder="Current code"' in page
    )

    assert client.get(url).status_code == 405
    client.post(url, {"code": "000000"})
    assert TotpDevice.objects.filter(pk=device.pk).exists()

    unthrottle(user)
    client.post(url, {"code": unused_code(user)})
    assert not TotpDevice.objects.filter(pk=device.pk).exists()
    assert not mfa.recovery_codes_left(user)
    assert "mfa.remove" in actions()


def test_another_users_device_is_not_found(client_for, personas):
    enrol(personas["viewer"])
    device = TotpDevice.objects.get(user=personas["viewer"])
    response = client_for("deployer").post(reverse("mfa-remove", args=[device.pk]))
    assert response.status_code == 404


def test_lists_and_project_choices_follow_the_policy_too(client, personas, mfa_policy_on):
    """visible_to() is the same permission path: a withheld role offers no project to upload to."""
    from certconsole.access.models import Project

    sign_in(client, "keycustodian")
    assert client.get(reverse("inventory:upload")).status_code == 403
    user = personas["keycustodian"]
    assert not Project.objects.visible_to(user, "certificate.create").exists()
    enrol(user)
    user = type(user).objects.get(pk=user.pk)
    assert Project.objects.visible_to(user, "certificate.create").exists()


def test_removing_the_last_device_brings_the_banner_back(client, personas, mfa_policy_on):
    user = personas["keycustodian"]
    enrol(user)
    sign_in(client, "keycustodian", user=user)
    assert "Enrol a second factor" not in client.get(DASHBOARD).content.decode()
    device = TotpDevice.objects.get(user=user)
    client.post(reverse("mfa-remove", args=[device.pk]))
    assert not TotpDevice.objects.filter(user=user).exists()
    assert "Enrol a second factor to use your KeyCustodian role" in (
        client.get(DASHBOARD).content.decode()
    )
