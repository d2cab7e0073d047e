"""ProjectAdmins manage members; every change and every denial is audited."""

import pytest
from django.urls import reverse

from certconsole.access.models import Membership
from certconsole.audit.models import AuditEvent


def test_admin_grants_a_role_and_it_is_audited(client_for, personas, project):
    client = client_for("projectadmin")
    response = client.post(
        reverse("access:member-add", args=["alpha"]),
        {"username": "outsider", "role": "auditor", "reason": "quarterly review"},
    )
    assert response.status_code == 302
    assert Membership.objects.filter(user=personas["outsider"], project=project, role="auditor")
    event = AuditEvent.objects.get(action="membership.grant")
    assert (event.actor_name, event.reason, event.source) == (
        "projectadmin",
        "quarterly review",
        "web",
    )
    assert event.detail == {"user": "outsider", "role": "auditor"}
    assert event.project_id == project.pk


def test_new_role_takes_effect_immediately(client_for, personas, project):
    client_for("projectadmin").post(
        reverse("access:member-add", args=["alpha"]), {"username": "viewer", "role": "auditor"}
    )
    client = client_for("viewer")
    assert client.get(reverse("audit:event-list")).status_code == 200


def test_unknown_user_is_a_field_error_and_nothing_changes(client_for, personas):
    before = Membership.objects.count()
    response = client_for("projectadmin").post(
        reverse("access:member-add", args=["alpha"]), {"username": "nobody", "role": "viewer"}
    )
    assert response.status_code == 400
    assert "No active user is called “nobody”" in response.content.decode()
    assert Membership.objects.count() == before


def test_removing_a_role_is_audited(client_for, personas, project):
    membership = Membership.objects.get(user=personas["viewer"], project=project)
    client_for("projectadmin").post(
        reverse("access:member-remove", args=["alpha", membership.pk]), {"reason": "left team"}
    )
    assert not Membership.objects.filter(pk=membership.pk).exists()
    event = AuditEvent.objects.get(action="membership.revoke")
    assert event.reason == "left team"
    assert event.detail == {"user": "viewer", "role": "viewer"}


def test_the_last_project_admin_cannot_be_removed(client_for, personas, project):
    membership = Membership.objects.get(user=personas["projectadmin"], project=project)
    response = client_for("projectadmin").post(
        reverse("access:member-remove", args=["alpha", membership.pk]), follow=True
    )
    assert "at least one ProjectAdmin" in response.content.decode()
    assert Membership.objects.filter(pk=membership.pk).exists()


@pytest.mark.parametrize("role", ["viewer", "requester", "keycustodian", "auditor"])
def test_a_denied_role_change_is_audited(client_for, role):
    response = client_for(role).post(
        reverse("access:member-add", args=["alpha"]), {"username": role, "role": "projectadmin"}
    )
    assert response.status_code == 403
    denial = AuditEvent.objects.get(action="access.denied")
    assert denial.actor_name == role
    assert denial.detail == {"permission": "member.manage"}


def test_other_projects_are_invisible(client_for):
    client = client_for("viewer")
    assert client.get(reverse("access:project-detail", args=["beta"])).status_code == 404
    assert "Beta" not in client.get(reverse("access:project-list")).content.decode()


def test_switching_project_changes_the_current_project(client_for, personas, other_project):
    client = client_for("superuser")
    client.post(reverse("access:switch-project"), {"project": "beta", "next": "/projects/"})
    assert client.get(reverse("dashboard")).context["current_project"] == other_project


def test_switch_refuses_to_redirect_off_site(client_for):
    response = client_for("viewer").post(
        reverse("access:switch-project"), {"project": "alpha", "next": "https://evil.example/"}
    )
    assert response["Location"] == "/"
