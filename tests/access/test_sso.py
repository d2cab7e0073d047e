"""Single sign-on against a real OpenID Connect provider process (realservices/oidc_provider.py).

The test client follows the authorization code flow: CertConsole redirects to the provider,
the provider's login form is filled over HTTP, and the callback makes CertConsole fetch the
token, check it and the userinfo from the provider, create the user and map the groups.
"""

from urllib.parse import urlparse

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from certconsole.access import mfa
from certconsole.access.models import GroupMapping, Membership, SyncedMembership
from certconsole.audit.models import AuditEvent
from tests.access.mfa_support import enrol, unused_code
from tests.conftest import PASSWORD
from tests.realservices import require
from tests.realservices.oidc_provider import OidcProvider
from tests.realservices.ports import free_port

IDP_USERS = {
    "dana": {
        "password": "idp-dana-pass",
        "sub": "sub-dana-1",
        "email": "dana@idp.test",
        "groups": ["pki-custodians", "everyone"],
    },
    "erik": {"password": "idp-erik-pass", "sub": "sub-erik-1", "groups": ["everyone"]},
    "viewer": {"password": "idp-viewer-pass", "sub": "sub-viewer-1", "groups": []},
}
CALLBACK = "http://testserver/accounts/sso/callback/"


@pytest.fixture(scope="module")
def idp(tmp_path_factory):
    with require(
        OidcProvider, tmp_path_factory.mktemp("oidc"), users=IDP_USERS, redirect_uris=[CALLBACK]
    ) as provider:
        yield provider


def configure_oidc(settings, provider) -> None:
    """The settings certconsole/settings.py derives from OIDC_ISSUER and friends."""
    settings.OIDC_ENABLED = True
    settings.OIDC_ISSUER = provider.issuer
    settings.OIDC_RP_CLIENT_ID = provider.client_id
    settings.OIDC_RP_CLIENT_SECRET = provider.client_secret
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = f"{provider.issuer}/authorize"
    settings.OIDC_OP_TOKEN_ENDPOINT = f"{provider.issuer}/token"
    settings.OIDC_OP_USER_ENDPOINT = f"{provider.issuer}/userinfo"
    settings.OIDC_OP_JWKS_ENDPOINT = f"{provider.issuer}/jwks"
    settings.AUTHENTICATION_BACKENDS = [
        *settings.AUTHENTICATION_BACKENDS,
        "certconsole.access.sso.OIDCBackend",
    ]


@pytest.fixture
def sso(settings, idp, personas):
    configure_oidc(settings, idp)
    idp.set_mode("normal")
    yield idp
    idp.set_mode("normal")


def sso_sign_in(client, idp, username):
    """Start at CertConsole, log in at the provider, come back: the callback's response."""
    start = client.get(reverse("oidc-start"))
    assert start.status_code == 302 and start["Location"].startswith(idp.issuer)
    back = urlparse(idp.login(start["Location"], username, IDP_USERS[username]["password"]))
    return client.get(f"{back.path}?{back.query}")


def signed_in_as(client):
    return client.session.get("_auth_user_id")


def test_the_login_page_offers_sso_only_when_configured(client, settings, idp, db):
    assert "Sign in with SSO" not in client.get(reverse("login")).content.decode()
    assert client.get(reverse("oidc-start")).status_code == 404
    configure_oidc(settings, idp)
    assert "Sign in with SSO" in client.get(reverse("login")).content.decode()


def test_first_sign_in_creates_the_user_and_maps_groups_to_roles(client, sso, project):
    GroupMapping.objects.create(
        source="oidc", group="pki-custodians", project=project, role="keycustodian"
    )
    GroupMapping.objects.create(source="ldap", group="everyone", project=project, role="viewer")

    response = sso_sign_in(client, sso, "dana")

    assert response.status_code == 302 and response["Location"] == "/"
    dana = get_user_model().objects.get(username="dana")
    assert signed_in_as(client) == str(dana.pk)
    assert dana.email == "dana@idp.test" and not dana.has_usable_password()
    roles = set(Membership.objects.filter(user=dana).values_list("project__slug", "role"))
    assert roles == {("alpha", "keycustodian")}
    assert SyncedMembership.objects.filter(membership__user=dana, source="oidc").count() == 1
    created = AuditEvent.objects.get(action="user.create", target_label="dana")
    assert created.detail["source"] == "oidc" and created.detail["subject"] == "sub-dana-1"
    grant = AuditEvent.objects.get(action="membership.grant")
    assert grant.detail == {"user": "dana", "role": "keycustodian"}
    assert "pki-custodians" in grant.reason
    assert client.get("/").status_code == 200


def test_leaving_the_group_takes_only_the_synced_role_back(client, sso, project, personas):
    mapping = GroupMapping.objects.create(
        source="oidc", group="pki-custodians", project=project, role="keycustodian"
    )
    sso_sign_in(client, sso, "dana")
    dana = get_user_model().objects.get(username="dana")
    Membership.objects.create(user=dana, project=project, role="auditor")  # granted by hand
    client.post(reverse("logout"))
    mapping.delete()

    sso_sign_in(client, sso, "dana")

    roles = set(Membership.objects.filter(user=dana).values_list("role", flat=True))
    assert roles == {"auditor"}
    revoke = AuditEvent.objects.get(action="membership.revoke")
    assert revoke.detail == {"user": "dana", "role": "keycustodian"}


@pytest.mark.parametrize(
    "mode, why",
    [
        ("wrong_audience", "Audience doesn't match"),
        ("wrong_signature", "Signature verification failed"),
        ("expired", "expired"),
    ],
)
def test_a_bad_id_token_signs_nobody_in_and_is_audited(client, sso, mode, why):
    sso.set_mode(mode)
    response = sso_sign_in(client, sso, "erik")
    assert response.status_code == 302 and response["Location"] == reverse("login")
    assert signed_in_as(client) is None
    assert not get_user_model().objects.filter(username="erik").exists()
    failure = AuditEvent.objects.get(action="sso.login_failed")
    assert why in failure.detail["why"]
    page = client.get(reverse("login")).content.decode()
    assert "Single sign-on failed" in page


def test_a_provider_that_cannot_be_reached_gives_a_clear_message(client, sso, settings):
    settings.OIDC_OP_TOKEN_ENDPOINT = f"http://127.0.0.1:{free_port()}/token"
    response = sso_sign_in(client, sso, "erik")
    assert response["Location"] == reverse("login")
    assert signed_in_as(client) is None
    assert "could not be reached" in client.get(reverse("login")).content.decode()
    assert AuditEvent.objects.filter(action="sso.login_failed").count() == 1


def test_a_replayed_callback_is_refused(client, sso):
    start = client.get(reverse("oidc-start"))
    back = urlparse(sso.login(start["Location"], "erik", IDP_USERS["erik"]["password"]))
    client.get(f"{back.path}?{back.query}")
    client.post(reverse("logout"))
    response = client.get(f"{back.path}?{back.query}")
    assert response.status_code == 302 and response["Location"] == reverse("login")
    assert signed_in_as(client) is None


def test_an_idp_user_never_takes_over_a_local_account(client, sso):
    response = sso_sign_in(client, sso, "viewer")
    assert response["Location"] == reverse("login")
    assert signed_in_as(client) is None
    assert "already called" in client.get(reverse("login")).content.decode()


def test_an_sso_user_with_a_second_factor_must_enter_it(client, sso):
    sso_sign_in(client, sso, "dana")
    dana = get_user_model().objects.get(username="dana")
    enrol(dana)
    client.post(reverse("logout"))

    response = sso_sign_in(client, sso, "dana")

    assert response["Location"] == reverse("mfa-verify")
    assert signed_in_as(client) is None
    assert client.post(reverse("mfa-verify"), {"code": unused_code(dana)}).status_code == 302
    assert signed_in_as(client) == str(dana.pk)
    assert client.session.get(mfa.VERIFIED_AT_KEY)


def test_local_accounts_can_be_turned_off_except_for_superusers(client, sso, settings):
    settings.LOCAL_LOGIN_ENABLED = False
    response = client.post(reverse("login"), {"username": "viewer", "password": PASSWORD})
    assert response.status_code == 200
    assert "Password sign-in is turned off" in response.content.decode()
    assert signed_in_as(client) is None
    response = client.post(reverse("login"), {"username": "root", "password": PASSWORD})
    assert response.status_code == 302 and signed_in_as(client)


def test_a_project_admin_maps_groups_of_their_projects_and_it_is_audited(client_for, project):
    client = client_for("projectadmin")
    url = reverse("security-group-mappings")
    response = client.post(
        url, {"project": "alpha", "source": "oidc", "group": "pki-admins", "role": "projectadmin"}
    )
    assert response.status_code == 302
    mapping = GroupMapping.objects.get(group="pki-admins")
    event = AuditEvent.objects.get(action="group_mapping.add")
    assert event.detail == {"source": "oidc", "group": "pki-admins", "role": "projectadmin"}
    assert event.project_id == project.pk

    outsider = client_for("outsider")
    refused = outsider.post(
        url, {"project": "alpha", "source": "oidc", "group": "x", "role": "projectadmin"}
    )
    assert refused.status_code == 400 and GroupMapping.objects.count() == 1
    remove = reverse("security-group-mapping-remove", args=[mapping.pk])
    assert outsider.post(remove).status_code == 404
    assert client_for("keycustodian").post(remove).status_code == 403
    assert client_for("projectadmin").post(remove).status_code == 302
    assert AuditEvent.objects.filter(action="group_mapping.remove").count() == 1
    assert not GroupMapping.objects.exists()


def test_an_sso_user_without_a_password_signs_in_again_for_a_stale_key_export(
    client, sso, project, inventory_cert
):
    from certconsole.access.reauth import SESSION_KEY

    GroupMapping.objects.create(
        source="oidc", group="pki-custodians", project=project, role="keycustodian"
    )
    sso_sign_in(client, sso, "dana")
    export = reverse("inventory:key-export", args=[inventory_cert.pk])
    assert client.get(export).status_code == 200
    session = client.session
    session[SESSION_KEY] -= 600
    session.save()
    response = client.get(export)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert signed_in_as(client) is None
