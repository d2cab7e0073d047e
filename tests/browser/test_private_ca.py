"""A ProjectAdmin creates a root CA and a profile; a requester orders from it on the order page,
sees it issued at once and downloads the trust bundle — in Chromium, with no network."""

import re

import pytest
from cryptography import x509
from playwright.sync_api import expect

from orders.models import CertificateAuthority, Order

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_admin_creates_a_ca_and_a_requester_orders_from_it(signed_in, live_server, project):
    page = signed_in("projectadmin")
    page.goto(f"{live_server.url}/orders/issuers/")
    page.get_by_role("link", name=re.compile("Private CAs of")).click()
    page.get_by_role("link", name="Create a CA").click()
    page.get_by_label("Name", exact=True).fill("Browser CA")
    page.get_by_label("Kind").select_option("root")
    page.get_by_label("Subject").fill("CN=Browser Root,O=Alpha")
    page.get_by_label("Permitted DNS subtrees").fill("internal.example")
    page.get_by_role("button", name="Create CA").click()
    expect(page.get_by_role("heading", name=re.compile("Browser CA"))).to_be_visible()
    page.get_by_role("link", name="Add a profile").click()
    page.get_by_label("Name", exact=True).fill("server")
    page.get_by_label("Allowed domains").fill("*.internal.example")
    page.get_by_label("Maximum validity (days)").fill("30")
    page.get_by_role("button", name="Save profile").click()
    expect(page.locator("table")).to_contain_text("*.internal.example")
    page.get_by_role("button", name="Sign out").click()

    page = signed_in("requester")
    page.goto(f"{live_server.url}/orders/")
    page.get_by_role("link", name="Order a certificate", exact=True).click()
    page.get_by_label("Issuer").select_option(
        label="Browser CA — profile server (private CA, issued at once)"
    )
    page.get_by_label("Domain names").fill("web.internal.example")
    page.get_by_role("button", name="Place order").click()

    order = Order.objects.get()
    expect(page).to_have_url(re.compile(re.escape(order.get_absolute_url()) + "$"))
    expect(page.locator("#timeline [data-state]")).to_have_text("Issued")
    expect(page.locator("#timeline")).to_contain_text("Signing with the private CA Browser CA")

    page.get_by_role("link", name="Browser CA").click()
    with page.expect_download() as info:
        page.get_by_role("link", name="Trust bundle (PEM)").click()
    bundle = x509.load_pem_x509_certificates(open(info.value.path(), "rb").read())  # noqa: SIM115
    ca = CertificateAuthority.objects.get(name="Browser CA")
    assert bundle == [ca.cert()]
    order.refresh_from_db()
    assert order.issued_version.issuer == ca.subject
