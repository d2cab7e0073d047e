"""A key custodian uploads a PEM bundle, reads the preview, confirms, and opens the certificate."""

import re

import pytest
from playwright.sync_api import expect

from inventory.models import Certificate

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_upload_preview_confirm_and_follow_the_link(signed_in, live_server, issued_chain, tmp_path):
    c = issued_chain
    bundle = tmp_path / "www.example.test.pem"
    bundle.write_bytes(c.leaf.pem + c.intermediate.pem + c.root.pem + c.leaf.key_pem)

    page = signed_in("keycustodian")
    page.goto(f"{live_server.url}/certificates/upload/")
    expect(page.get_by_role("heading", name="Upload certificates")).to_be_visible()
    page.get_by_label("Files").set_input_files(bundle)
    page.get_by_role("button", name="Preview the import").click()

    preview = page.locator("#preview")
    expect(preview).to_contain_text("CN=www.example.test")
    row = preview.locator("tbody tr").first
    expect(row.locator(".badge", has_text=re.compile(r"^New$"))).to_be_visible()
    expect(row).to_contain_text("Chain complete")
    expect(row).to_contain_text("Private key included")
    # htmx swapped the preview in: the form above keeps its file.
    expect(page.get_by_label("Files")).to_have_value(re.compile(r"www\.example\.test\.pem$"))
    assert Certificate.objects.count() == 0

    page.get_by_role("button", name="Confirm and import").click()
    expect(page.locator("tbody")).to_contain_text("imported")
    page.get_by_role("link", name="www.example.test").click()
    certificate = Certificate.objects.get()
    expect(page).to_have_url(re.compile(re.escape(certificate.get_absolute_url()) + "$"))
    assert certificate.has_private_key


def test_a_viewer_cannot_reach_the_upload_page(signed_in, live_server):
    page = signed_in("viewer")
    response = page.goto(f"{live_server.url}/certificates/upload/")
    assert response.status == 403
    expect(page.get_by_role("button", name="Preview the import")).to_have_count(0)
