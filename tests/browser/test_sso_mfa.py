"""In Chromium: sign in through the real OpenID Connect provider's login page, enrol an
authenticator (code computed from the secret on the page), and export a key, which needs a
fresh second factor."""

import time

import pytest
from django.contrib.sessions.backends.db import SessionStore
from playwright.sync_api import expect

from certconsole.access import mfa
from certconsole.access.models import GroupMapping, TotpDevice
from certconsole.audit.models import AuditEvent
from tests.access.mfa_support import key_from_secret, totp_code
from tests.access.test_sso import configure_oidc
from tests.realservices import require
from tests.realservices.oidc_provider import OidcProvider

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

IDP_USERS = {
    "dana": {"password": "idp-dana-pass", "sub": "sub-dana-1", "groups": ["pki-custodians"]}
}


@pytest.fixture
def idp(live_server, tmp_path, settings, personas, project):
    callback = f"{live_server.url}/accounts/sso/callback/"
    with require(OidcProvider, tmp_path, users=IDP_USERS, redirect_uris=[callback]) as provider:
        configure_oidc(settings, provider)
        settings.CERTCONSOLE_MFA_DEFAULT_ROLES = ["keycustodian", "projectadmin"]
        GroupMapping.objects.create(
            source="oidc", group="pki-custodians", project=project, role="keycustodian"
        )
        yield provider


def fresh_code(user) -> str:
    """The code an authenticator shows once the device would accept it (no replay)."""
    while True:
        device = TotpDevice.objects.get(user=user, confirmed=True)
        now_t = int(time.time()) // 30
        if device.last_t <= now_t:
            return totp_code(device.bin_key, at=max(now_t, device.last_t + 1) * 30 + 1)
        time.sleep(1)


def age_second_factor(page, seconds=600):
    """Let the session's second factor grow older than the 5 minutes key export allows."""
    cookie = next(c for c in page.context.cookies() if c["name"] == "sessionid")
    session = SessionStore(session_key=cookie["value"])
    session[mfa.VERIFIED_AT_KEY] = int(time.time()) - seconds
    session.save()


def test_sso_sign_in_then_a_second_factor_to_export_a_key(
    page, live_server, idp, inventory_cert, django_user_model
):
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_role("link", name="Sign in with SSO").click()
    expect(page.get_by_role("heading", name="Test identity provider")).to_be_visible()
    page.get_by_label("IdP user name").fill("dana")
    page.get_by_label("IdP password").fill("idp-dana-pass")
    page.get_by_role("button", name="Sign in at the provider").click()

    # Signed in by the provider's groups, but the KeyCustodian role waits for a second factor.
    expect(page.get_by_text("Enrol a second factor to use your KeyCustodian role")).to_be_visible()
    export_url = f"{live_server.url}/certificates/{inventory_cert.pk}/export-key/"
    assert page.goto(export_url).status == 403

    page.goto(f"{live_server.url}/")
    page.get_by_role("link", name="Security").click()
    page.get_by_role("link", name="Set up an authenticator app").click()
    expect(page.locator(".qr svg")).to_be_visible()
    key = key_from_secret(page.locator("#totp-secret").inner_text().strip())
    page.get_by_label("Code", exact=True).fill(totp_code(key))
    page.get_by_role("button", name="Confirm and turn on").click()
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    expect(page.locator("#recovery-codes li")).to_have_count(10)

    # Later: key export asks for a current code again.
    dana = django_user_model.objects.get(username="dana")
    age_second_factor(page)
    page.goto(export_url)
    expect(page.get_by_label("Code from your authenticator app")).to_be_visible()
    page.get_by_label("Format").select_option("key")
    page.get_by_label("Reason").fill("CHG-11 move to the new proxy")
    page.get_by_label("Code from your authenticator app").fill("000000")
    page.get_by_role("button", name="Export the private key").click()
    expect(page.get_by_text("That code is not valid")).to_be_visible()

    TotpDevice.objects.filter(user=dana).update(throttling_failure_count=0)
    page.get_by_label("Reason").fill("CHG-11 move to the new proxy")
    page.get_by_label("Code from your authenticator app").fill(fresh_code(dana))
    with page.expect_download() as info:
        page.get_by_role("button", name="Export the private key").click()
    assert b"PRIVATE KEY" in info.value.path().read_bytes()
    event = AuditEvent.objects.get(action="certificate.export_key")
    assert event.actor_name == "dana"
    assert AuditEvent.objects.filter(action="mfa.failed").count() == 1

    # Next sign-in through the provider stops at the second factor before anything else.
    page.goto(f"{live_server.url}/")
    page.get_by_role("button", name="Sign out").click()
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_role("link", name="Sign in with SSO").click()
    page.get_by_label("IdP user name").fill("dana")
    page.get_by_label("IdP password").fill("idp-dana-pass")
    page.get_by_role("button", name="Sign in at the provider").click()
    expect(page.get_by_role("heading", name="Confirm it is you")).to_be_visible()
    assert page.goto(export_url).url.startswith(f"{live_server.url}/accounts/login/")
    page.goto(f"{live_server.url}/accounts/mfa/verify/")
    page.get_by_label("Code", exact=True).fill(fresh_code(dana))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("link", name="Security")).to_be_visible()
    expect(page.get_by_text("Enrol a second factor")).to_have_count(0)
