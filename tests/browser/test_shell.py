"""A person signs in, switches project and reviews the audit log, in Chromium."""

import re

import pytest
from playwright.sync_api import expect

from certconsole.access.models import Membership
from certconsole.audit import record

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_sign_in_switch_project_and_read_the_audit_log(
    signed_in, live_server, personas, project, other_project
):
    auditor = personas["auditor"]
    Membership.objects.create(user=auditor, project=other_project, role="auditor")
    record(personas["projectadmin"], "certificate.upload", project, reason="<b>bold</b>")
    record(personas["outsider"], "certificate.export_key", other_project, reason="migration")

    page = signed_in("auditor")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.locator("#project-switcher")).to_have_value("alpha")

    # Switching project submits on change (app.js), without a page of its own.
    page.select_option("#project-switcher", "beta")
    expect(page.locator("#project-switcher")).to_have_value("beta")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit").click()
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    rows = page.locator("#results tbody tr")
    expect(rows.filter(has_text="certificate.export_key")).to_have_count(1)
    # Hostile text is shown as text, not markup.
    page.get_by_role("link", name=re.compile(r"\d{4}-\d\d-\d\d")).first.click()
    expect(page.get_by_role("heading", name=re.compile(r"Audit event #\d+"))).to_be_visible()

    page.go_back()
    # Live filtering: typing an action narrows the table without a full reload.
    page.get_by_label("Action").fill("certificate.upload")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("certificate.upload")
    assert "action=certificate.upload" in page.url


def test_login_page_shows_a_clear_error_for_a_wrong_password(page, live_server, personas):
    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/"))
    page.get_by_label("User name").fill("viewer")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("enter a correct username and password")
