"""A key custodian exports a PKCS#12 from the certificate page in Chromium; openssl opens it."""

import pytest
from playwright.sync_api import expect

from certconsole.audit.models import AuditEvent
from tests.pki.factory import openssl

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSPHRASE = "browser passphrase 7"


def test_key_custodian_downloads_a_pkcs12_that_openssl_opens(
    signed_in, live_server, inventory_cert, issued_chain, tmp_path
):
    page = signed_in("keycustodian")
    page.goto(f"{live_server.url}/certificates/{inventory_cert.pk}/")
    downloads = page.get_by_role("region", name="Download")
    expect(downloads.get_by_role("link", name="Full chain (PEM)")).to_be_visible()
    downloads.get_by_role("link", name="Export the private key…").click()

    expect(
        page.get_by_role("heading", name="Export the private key of www.example.test")
    ).to_be_visible()
    expect(page.get_by_text("You are exporting the private key of")).to_contain_text(
        "recorded in the audit log"
    )
    expect(page.get_by_label("Format")).to_have_value("p12")
    page.get_by_label("Format").select_option(label="PKCS#12 / PFX, AES-256")
    page.get_by_label("Passphrase", exact=True).fill(PASSPHRASE)
    page.get_by_label("Passphrase again").fill(PASSPHRASE)
    page.get_by_label("Reason").fill("CHG-9 install on the new load balancer")
    with page.expect_download() as info:
        page.get_by_role("button", name="Export the private key").click()
    download = info.value
    assert download.suggested_filename == "www.example.test.p12"
    path = tmp_path / "export.p12"
    download.save_as(path)

    passin = f"pass:{PASSPHRASE}"
    key = openssl(
        "pkcs12", "-in", "export.p12", "-passin", passin, "-nocerts", "-nodes", cwd=tmp_path
    )
    (tmp_path / "key.pem").write_text(key)
    (tmp_path / "leaf.pem").write_bytes(issued_chain.leaf.pem)
    from_key = openssl("pkey", "-in", "key.pem", "-pubout", cwd=tmp_path)
    from_cert = openssl("x509", "-in", "leaf.pem", "-noout", "-pubkey", cwd=tmp_path)
    assert from_key == from_cert

    event = AuditEvent.objects.get(action="certificate.export_key")
    assert (event.actor_name, event.reason, event.detail["format"]) == (
        "keycustodian",
        "CHG-9 install on the new load balancer",
        "p12",
    )
    assert event.source == "web"
