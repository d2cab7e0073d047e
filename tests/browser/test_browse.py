"""A viewer finds a certificate by typing a domain, then reads its chain and lint, in Chromium."""

import re

import pytest
from playwright.sync_api import expect

from tests.inventory.test_browse import make_cert

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_viewer_searches_live_and_opens_a_certificate(
    signed_in, live_server, project, inventory_cert
):
    for i in range(3):
        make_cert(project, f"other{i}", domains=[f"other{i}.example.org"])

    page = signed_in("viewer")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Certificates").click()
    expect(page.get_by_role("heading", name="Certificates")).to_be_visible()
    rows = page.locator("#results tbody tr")
    expect(rows).to_have_count(4)

    # Typing narrows the table without a page load; the URL keeps the search.
    page.evaluate("window.__still_here = true")
    page.get_by_label("Search", exact=True).fill("www.example.test")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("www.example.test")
    expect(page).to_have_url(re.compile(r"q=www\.example\.test"))
    assert page.evaluate("window.__still_here") is True

    rows.first.get_by_role("link").first.click()
    expect(page.get_by_role("heading", name=re.compile("Chain"))).to_be_visible()
    chain = page.locator(".chain-table tbody tr")
    expect(chain).to_have_count(3)
    expect(chain.nth(1)).to_contain_text("Test Intermediate CA")
    expect(page.get_by_role("heading", name=re.compile("Lint findings"))).to_be_visible()
    expect(page.get_by_role("heading", name="Deployments")).to_be_visible()


def test_sorting_and_paging_work_without_javascript(browser, live_server, personas, project):
    from tests.conftest import PASSWORD

    for i in range(55):
        make_cert(project, f"c{i:02}", days=40 + i)
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{live_server.url}/accounts/login/?next=/certificates/")
    page.get_by_label("User name").fill("viewer")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Showing 1–50 of 55 certificates")).to_be_visible()
    page.get_by_role("link", name="Name").click()
    page.get_by_role("link", name="Name").click()  # second click sorts descending
    expect(page.locator("#results tbody tr").first).to_contain_text("c54")
    page.get_by_role("link", name="Next →").click()
    expect(page.get_by_text("Showing 51–55 of 55 certificates")).to_be_visible()
    expect(page).to_have_url(re.compile(r"sort=-name.*page=2"))
    context.close()
