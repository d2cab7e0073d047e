"""Provisioning commands are idempotent and audited with source cli."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from certconsole.access.models import Membership, Project
from certconsole.audit.models import AuditEvent


def run_json(capsys, *args):
    call_command(*args, "--json")
    return json.loads(capsys.readouterr().out)


@pytest.mark.django_db
def test_seed_demo_creates_one_user_per_role_and_is_harmless_twice(capsys, client):
    first = run_json(capsys, "seed_demo", "--password", "demo-pass-123")
    second = run_json(capsys, "seed_demo", "--password", "demo-pass-123")
    names = [u["username"] for u in first["users"]]
    assert names == ["viewer", "requester", "deployer", "keycustodian", "auditor", "projectadmin"]
    assert all(u["created"] for u in first["users"])
    assert not any(u["created"] for u in second["users"])
    assert Membership.objects.filter(project__slug="demo").count() == 6
    user = get_user_model().objects.get(username="auditor")
    assert user.check_password("demo-pass-123")
    assert AuditEvent.objects.filter(source="cli", action="membership.grant").count() == 6


@pytest.mark.django_db
def test_project_create_and_add_member(capsys):
    created = run_json(capsys, "project", "create", "payments", "--name", "Payments")
    again = run_json(capsys, "project", "create", "payments")
    assert (created["created"], again["created"]) == (True, False)
    added = run_json(
        capsys,
        "project",
        "add-member",
        "payments",
        "alice",
        "Deployer",
        "--create-user",
        "--email",
        "alice@example.test",
    )
    assert added == {
        "project": "payments",
        "user": "alice",
        "role": "deployer",
        "user_created": True,
        "granted": True,
        "message": "alice is Deployer in payments",
    }
    assert (
        run_json(capsys, "project", "add-member", "payments", "alice", "deployer")["granted"]
        is False
    )
    grant = AuditEvent.objects.get(action="membership.grant")
    assert grant.source == "cli"
    assert grant.actor_name.startswith("cli:")
    assert grant.project == Project.objects.get(slug="payments")


@pytest.mark.django_db
def test_add_member_errors_are_clear(capsys):
    call_command("project", "create", "payments")
    with pytest.raises(CommandError, match="pass --create-user"):
        call_command("project", "add-member", "payments", "ghost", "viewer")
    with pytest.raises(CommandError, match="Unknown role"):
        call_command("project", "add-member", "payments", "ghost", "king", "--create-user")
    with pytest.raises(CommandError, match="No project 'nope'"):
        call_command("project", "add-member", "nope", "ghost", "viewer")
    with pytest.raises(CommandError, match="lower-case letters"):
        call_command("project", "create", "Bad Slug!")


@pytest.mark.django_db
def test_first_admin_is_created_once_with_a_printed_password(capsys):
    call_command("ensure_admin")
    out = capsys.readouterr().out
    password = out.split("password: ")[1].split()[0]
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password(password)
    call_command("ensure_admin")
    assert capsys.readouterr().out == ""
    assert get_user_model().objects.count() == 1
