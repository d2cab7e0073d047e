"""The dashboard: counts by status, the SVG expiry timeline, top risks; and user preferences."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from certconsole.access.current import SESSION_KEY
from certconsole.access.models import Membership, UserPreference
from certconsole.charts import expiry_timeline
from deployments.models import Binding, Target
from inventory.models import Certificate
from tests.inventory.test_reminders import make_cert


def cert(project, name, days, **options):
    return make_cert(project, name, days, now=timezone.now(), **options)


@pytest.fixture
def estate(project, personas):
    """valid ×1, expiring ×2, expired ×1 (deployed), revoked ×1, and one of each risk."""
    certs = {
        "valid": cert(project, "valid-1", 200, owner="a@example.test"),
        "soon": cert(project, "soon-1", 10, owner="a@example.test"),
        "weak": cert(project, "weak-1", 12, owner="a@example.test", key_size=1024),
        "expired": cert(project, "expired-1", -5, owner="a@example.test"),
        "revoked": cert(project, "revoked-1", 90, owner="a@example.test"),
        "chain": cert(project, "chain-1", 300, owner="a@example.test", chain_complete=False),
        "orphan": cert(project, "orphan-1", 150),
    }
    Certificate.objects.filter(pk=certs["revoked"].pk).update(revoked=True)
    target = Target.objects.create(project=project, name="edge", kind="manual")
    Binding.objects.create(
        project=project, certificate=certs["expired"], target=target, probe_host="edge.test"
    )
    return certs


def counts(body: str) -> dict[str, int]:
    found = re.findall(r'class="stat status-(\w+)"[^>]*>\s*<span class="number">(\d+)', body)
    return {status: int(number) for status, number in found}


def section(body: str, name: str) -> str:
    return body.split(f"risk-{name}")[1].split('<div class="panel risk')[0]


def test_counts_by_status_link_to_the_filtered_list(client_for, estate):
    body = client_for("viewer").get("/").content.decode()
    assert counts(body) == {"valid": 3, "expiring": 2, "expired": 1, "revoked": 1}
    assert 'href="/certificates/?status=expiring&amp;project=alpha"' in body
    assert 'href="/certificates/?status=revoked&amp;project=alpha"' in body


def test_the_timeline_is_an_accessible_svg_without_script(client_for, estate):
    response = client_for("viewer").get("/")
    body = response.content.decode()
    svg = body.split('<svg class="timeline"')[1].split("</svg>")[0]
    assert 'role="img"' in svg and "<desc" in svg
    assert svg.count("<rect") == 26
    assert re.search(r"<title>2 certificates expire in the week of", svg)
    assert "<script" not in svg and " on" not in svg.replace(" one", "")
    # soon, weak, orphan; revoked (90 d) excluded, valid and chain are beyond 26 weeks
    assert "3 certificates expire in the next 26 weeks." in body
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]


def test_top_risks_name_the_certificates(client_for, estate):
    body = client_for("viewer").get("/").content.decode()
    assert "soon-1" in section(body, "expiring_no_renewal")
    assert "weak-1" in section(body, "expiring_no_renewal")
    assert "expired-1" in section(body, "expired_deployed")
    assert "weak-1" in section(body, "weak_key") and "soon-1" not in section(body, "weak_key")
    assert "chain-1" in section(body, "incomplete_chain")
    assert "orphan-1" in section(body, "no_owner") and "valid-1" not in section(body, "no_owner")
    assert "revoked-1" not in body.split("Top risks")[1]


def test_a_lint_weak_key_finding_counts_as_a_weak_key(client_for, project, personas):
    ec = cert(project, "ec-small", 100, owner="a@example.test")
    ec.current_version.lint_findings = [
        {"code": "weak_key", "severity": "error", "message": "EC key of 192 bits"}
    ]
    ec.current_version.save()
    body = client_for("viewer").get("/").content.decode()
    assert "ec-small" in section(body, "weak_key")


def test_the_query_count_does_not_grow_with_certificates(client_for, project, estate):
    client = client_for("projectadmin")
    client.get("/")
    with CaptureQueriesContext(connection) as few:
        client.get("/")
    for i in range(60):
        cert(project, f"bulk-{i}", i * 3 - 20, key_size=1024 if i % 7 == 0 else 2048)
    with CaptureQueriesContext(connection) as many:
        client.get("/")
    assert len(many) == len(few)
    assert len(few) <= 20


def test_the_dashboard_follows_the_project_switcher_or_shows_all(
    client, personas, project, other_project, estate
):
    outsider = personas["outsider"]  # ProjectAdmin of beta, viewer of alpha from here on
    Membership.objects.create(user=outsider, project=project, role="viewer")
    cert(other_project, "beta-soon", 5)
    client.force_login(outsider)
    client.post("/projects/switch/", {"project": "beta", "next": "/"})
    beta = client.get("/").content.decode()
    assert counts(beta) == {"valid": 0, "expiring": 1, "expired": 0, "revoked": 0}
    everything = client.get("/?scope=all").content.decode()
    assert counts(everything) == {"valid": 3, "expiring": 3, "expired": 1, "revoked": 1}
    assert 'href="/certificates/?status=expiring"' in everything


def test_an_auditor_sees_no_certificates_and_no_error(client_for, estate):
    body = client_for("auditor").get("/").content.decode()
    assert counts(body) == {"valid": 0, "expiring": 0, "expired": 0, "revoked": 0}
    assert "No certificate expires in the next 26 weeks." in body


def test_a_member_of_no_project_gets_the_empty_state(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("loner", "l@example.test", "x"))
    assert "You are not a member of any project yet." in client.get("/").content.decode()


def test_expiry_timeline_geometry():
    chart = expiry_timeline([0, 3, 0, 7] + [0] * 22, timezone.now().date())
    assert chart.maximum == 10 and chart.total == 10 and len(chart.bars) == 26
    tallest = chart.bars[3]
    assert tallest.count == 7 and tallest.y < chart.bars[1].y < chart.plot_bottom
    assert "busiest week" in chart.summary


# Preferences ---------------------------------------------------------------------------------


def test_preferences_set_the_default_project_and_digest_opt_outs(
    client, personas, project, other_project
):
    user = personas["outsider"]
    Membership.objects.create(user=user, project=project, role="viewer")
    client.force_login(user)
    form = client.get("/projects/me/preferences/").content.decode()
    assert "Default project" in form and "No reminder digests from" in form

    response = client.post(
        "/projects/me/preferences/", {"default_project": "beta", "digest_opt_out": ["alpha"]}
    )
    assert response.status_code == 302
    preference = UserPreference.objects.get(user=user)
    assert preference.default_project == other_project
    assert list(preference.digest_opt_out.all()) == [project]

    # A fresh session opens on the default project.
    client.logout()
    client.force_login(user)
    client.get("/")
    assert client.session[SESSION_KEY] == other_project.pk


def test_preferences_refuse_projects_of_others(client_for, other_project):
    response = client_for("viewer").post(
        "/projects/me/preferences/", {"default_project": "beta", "digest_opt_out": ["beta"]}
    )
    assert response.status_code == 400
    assert not UserPreference.objects.exists()


def test_certificates_that_renew_themselves_are_not_an_expiry_risk(client_for, project, estate):
    from orders.models import RenewalPolicy

    RenewalPolicy.objects.create(certificate=estate["soon"])
    body = client_for("viewer").get("/").content.decode()
    risk = section(body, "expiring_no_renewal")
    assert "weak-1" in risk and "soon-1" not in risk
