"""LDAP sign-in against a real OpenLDAP slapd and its test directory (realservices/slapd.py)."""

import os

import environ
import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from certconsole.access.ldap_config import ldap_settings
from certconsole.access.models import GroupMapping, Membership
from certconsole.audit.models import AuditEvent
from tests.conftest import PASSWORD
from tests.realservices import require
from tests.realservices.ports import free_port
from tests.realservices.slapd import SlapdServer

DIRECTORY = {
    "carol": {"password": "ldap-carol-pass", "groups": ["pki-admins", "staff"]},
    "frank": {"password": "ldap-frank-pass", "groups": ["staff"]},
    "viewer": {"password": "ldap-viewer-pass", "groups": ["staff"]},
}


@pytest.fixture(scope="module")
def slapd(tmp_path_factory):
    with require(SlapdServer, tmp_path_factory.mktemp("slapd"), users=DIRECTORY) as server:
        yield server


@pytest.fixture
def directory(slapd, settings, monkeypatch, personas):
    """LDAP sign-in configured from the environment, as in production."""
    monkeypatch.setenv("AUTH_LDAP_BIND_DN", slapd.bind_dn)
    monkeypatch.setenv("AUTH_LDAP_BIND_PASSWORD", slapd.bind_password)
    monkeypatch.setenv("AUTH_LDAP_USER_BASE", f"ou=people,{slapd.base}")
    monkeypatch.setenv("AUTH_LDAP_GROUP_BASE", f"ou=groups,{slapd.base}")
    monkeypatch.setenv("AUTH_LDAP_GROUP_FILTER", "(objectClass=groupOfNames)")
    monkeypatch.setenv("AUTH_LDAP_TIMEOUT", "2")
    for name, value in ldap_settings(environ.Env(), lambda n: os.environ.get(n, "")).items():
        setattr(settings, name, value)
    settings.AUTH_LDAP_SERVER_URI = slapd.uri
    settings.AUTHENTICATION_BACKENDS = [
        *settings.AUTHENTICATION_BACKENDS,
        "certconsole.access.ldap_auth.LDAPBackend",
    ]
    return slapd


def sign_in(client, username, password):
    return client.post(reverse("login"), {"username": username, "password": password})


def test_a_directory_user_signs_in_and_groups_map_to_roles(client, directory, project):
    GroupMapping.objects.create(source="ldap", group="pki-admins", project=project, role="deployer")
    GroupMapping.objects.create(source="oidc", group="staff", project=project, role="auditor")

    response = sign_in(client, "carol", "ldap-carol-pass")

    assert response.status_code == 302
    carol = get_user_model().objects.get(username="carol")
    assert client.session["_auth_user_id"] == str(carol.pk)
    assert carol.email == "carol@ldap.test" and not carol.has_usable_password()
    assert set(Membership.objects.filter(user=carol).values_list("role", flat=True)) == {"deployer"}
    created = AuditEvent.objects.get(action="user.create", target_label="carol")
    assert created.detail["source"] == "ldap"
    assert AuditEvent.objects.get(action="membership.grant").detail["user"] == "carol"


def test_leaving_a_mapped_group_takes_the_role_back(client, directory, project):
    mapping = GroupMapping.objects.create(
        source="ldap", group="pki-admins", project=project, role="deployer"
    )
    sign_in(client, "carol", "ldap-carol-pass")
    client.post(reverse("logout"))
    mapping.delete()
    sign_in(client, "carol", "ldap-carol-pass")
    assert not Membership.objects.filter(user__username="carol").exists()
    assert AuditEvent.objects.filter(action="membership.revoke").count() == 1


def test_a_wrong_directory_password_is_refused(client, directory):
    response = sign_in(client, "frank", "not-franks-password")
    assert response.status_code == 200
    assert "correct username and password" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_a_directory_that_is_down_gives_a_clear_message_and_an_audit_event(
    client, directory, settings
):
    settings.AUTH_LDAP_SERVER_URI = f"ldap://127.0.0.1:{free_port()}"
    response = sign_in(client, "frank", "ldap-frank-pass")
    assert response.status_code == 200
    assert "directory server could not be reached" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="ldap.login_failed").exists()


def test_a_directory_user_never_takes_over_a_local_account(client, directory):
    response = sign_in(client, "viewer", "ldap-viewer-pass")
    assert response.status_code == 200 and "_auth_user_id" not in client.session
    failure = AuditEvent.objects.get(action="ldap.login_failed")
    assert failure.detail["why"] == "a local account has this name"
    assert sign_in(client, "viewer", PASSWORD).status_code == 302


def test_directory_users_still_sign_in_when_local_passwords_are_off(client, directory, settings):
    settings.LOCAL_LOGIN_ENABLED = False
    assert sign_in(client, "frank", "ldap-frank-pass").status_code == 302
    client.post(reverse("logout"))
    refused = sign_in(client, "viewer", PASSWORD)
    assert "Password sign-in is turned off" in refused.content.decode()
