"""What the security team sees: who did what, filtered and exported."""

import csv
import io
import json

import pytest
from django.urls import reverse

from certconsole.audit import record
from certconsole.audit.models import AuditEvent
from tests.conftest import PASSWORD


@pytest.fixture
def events(personas, project, other_project):
    admin = personas["projectadmin"]
    return {
        "grant": record(admin, "membership.grant", project, user="viewer", role="viewer"),
        "formula": record(admin, "certificate.rename", project, reason='=HYPERLINK("x")'),
        "other": record(personas["outsider"], "membership.grant", other_project),
    }


def test_auditor_sees_only_their_projects_events(client_for, events):
    page = client_for("auditor").get(reverse("audit:event-list")).content.decode()
    assert "membership.grant" in page
    assert "certificate.rename" in page
    assert "Beta" not in page


def test_filters_narrow_the_list(client_for, events):
    client = client_for("auditor")
    response = client.get(reverse("audit:event-list"), {"action": "certificate"})
    listed = list(response.context["page"].object_list)
    assert listed == [events["formula"]]
    response = client.get(
        reverse("audit:event-list"), {"actor": "projectadmin", "project": "alpha"}
    )
    assert {e.action for e in response.context["page"].object_list} == {
        "membership.grant",
        "certificate.rename",
    }


def test_htmx_filtering_returns_only_the_results_fragment(client_for, events):
    response = client_for("auditor").get(
        reverse("audit:event-list"), {"action": "membership"}, headers={"HX-Request": "true"}
    )
    body = response.content.decode()
    assert 'id="results"' in body
    assert "<html" not in body


def test_invalid_filter_shows_an_error_not_a_crash(client_for, events):
    response = client_for("auditor").get(reverse("audit:event-list"), {"since": "yesterday"})
    assert response.status_code == 200
    assert "Enter a valid date" in response.content.decode()


def test_csv_export_streams_the_filtered_events_and_is_audited(client_for, events):
    response = client_for("auditor").get(
        reverse("audit:event-export-csv"), {"action": "certificate.rename"}
    )
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [row["action"] for row in rows] == ["certificate.rename"]
    # A spreadsheet must not execute what an attacker typed as a reason.
    assert rows[0]["reason"].startswith("'=")
    export = AuditEvent.objects.filter(action="audit.export").get()
    assert export.actor_name == "auditor"
    assert export.detail["filters"] == {"action": "certificate.rename"}


def test_jsonl_export_has_one_event_per_line_with_hashes(client_for, events):
    response = client_for("projectadmin").get(reverse("audit:event-export-jsonl"))
    lines = b"".join(response.streaming_content).decode().splitlines()
    parsed = [json.loads(line) for line in lines]
    assert {p["action"] for p in parsed} >= {"membership.grant", "certificate.rename"}
    assert all(len(p["hash"]) == 64 for p in parsed)


def test_event_detail_shows_hashes_and_detail(client_for, events):
    event = events["grant"]
    page = client_for("auditor").get(reverse("audit:event-detail", args=[event.pk]))
    assert event.hash in page.content.decode()


def test_sign_in_sign_out_and_failures_are_audited(client, personas):
    client.post(reverse("login"), {"username": "viewer", "password": "wrong"})
    client.post(reverse("login"), {"username": "viewer", "password": PASSWORD})
    client.post(reverse("logout"))
    actions = list(AuditEvent.objects.order_by("id").values_list("action", "actor_name"))
    assert actions == [
        ("auth.login_failed", "system"),
        ("auth.login", "viewer"),
        ("auth.logout", "viewer"),
    ]
    failed = AuditEvent.objects.get(action="auth.login_failed")
    assert failed.detail == {"attempted_username": "viewer"}
    assert failed.ip == "127.0.0.1"
    assert "wrong" not in json.dumps(failed.detail)


def test_repeated_failed_sign_ins_lock_the_account(client, personas):
    for _ in range(5):
        client.post(reverse("login"), {"username": "viewer", "password": "wrong"})
    response = client.post(reverse("login"), {"username": "viewer", "password": PASSWORD})
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.content.decode()
