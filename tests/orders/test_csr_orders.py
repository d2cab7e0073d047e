"""External CA orders: the console makes the key and CSR, a CA signs it outside (openssl x509
-req), the upload is matched by SPKI; a certificate for another key is refused."""

import subprocess

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from django.urls import reverse

from certconsole.audit.models import AuditEvent
from orders import renewal
from orders.models import Order
from tests.pki.factory import make_ca

pytestmark = pytest.mark.django_db(transaction=True)


def _sign_outside(tmp_path, csr_pem: bytes, ca, name: str) -> bytes:
    """What a commercial CA does with the CSR, here with openssl."""
    (tmp_path / f"{name}.csr").write_bytes(csr_pem)
    (tmp_path / "ca.pem").write_bytes(ca.pem)
    (tmp_path / "ca.key").write_bytes(ca.key_pem)
    (tmp_path / "leaf.cnf").write_text(
        "basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n"
        "subjectAltName=DNS:shop.example.com,DNS:www.shop.example.com\n"
    )
    out = tmp_path / f"{name}.pem"
    result = subprocess.run(
        ["openssl", "x509", "-req", "-in", str(tmp_path / f"{name}.csr"), "-CA",
         str(tmp_path / "ca.pem"), "-CAkey", str(tmp_path / "ca.key"), "-CAcreateserial",
         "-days", "365", "-extfile", str(tmp_path / "leaf.cnf"), "-out", str(out)],
        capture_output=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out.read_bytes()


def _post_order(client, **extra):
    payload = {
        "account": "external",
        "domains": "shop.example.com\nwww.shop.example.com",
        "key_type": "rsa-3072",
        "external_ca": "Acme Trust",
        "validation": "OV",
        "coverage": "san",
        "org_o": "Alpha GmbH",
        "org_l": "Berlin",
        "org_c": "DE",
        **extra,
    }
    return client.post(reverse("orders:order-create"), payload)


def test_csr_order_end_to_end_with_a_certificate_signed_outside(client_for, tmp_path, project):
    client = client_for("requester")
    response = _post_order(client)
    order = Order.objects.get()
    assert response.status_code == 302
    assert (order.kind, order.state) == (Order.Kind.EXTERNAL_CSR, Order.State.SUBMITTED)
    assert order.external["organization"] == {"O": "Alpha GmbH", "L": "Berlin", "C": "DE"}
    page = client.get(order.get_absolute_url())
    assert b"Submitted to CA" in page.content and b"Upload the certificate" in page.content
    csr_response = client.get(reverse("orders:order-csr", args=[order.pk]))
    csr = x509.load_pem_x509_csr(csr_response.content)
    assert csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Alpha GmbH"

    root = make_ca("Commercial Root")
    # A certificate for someone else's key is refused with a clear message.
    other = client_for("requester")
    _post_order(other, domains="shop.example.com")
    stranger = Order.objects.exclude(pk=order.pk).get()
    wrong = _sign_outside(tmp_path, stranger.csr_pem.encode(), root, "wrong")
    with open(tmp_path / "wrong.pem", "rb") as handle:
        client.post(reverse("orders:order-upload-certificate", args=[order.pk]), {"file": handle})
    order.refresh_from_db()
    assert order.state == Order.State.SUBMITTED
    messages = [m.message for m in client.get(order.get_absolute_url()).context["messages"]]
    assert any("does not match the order's key" in m for m in messages), messages
    assert wrong

    # The CA's real answer: leaf only; the chain is completed from the pool (root uploaded).
    from inventory.importing import import_file

    import_file(None, project, "root.pem", root.pem)
    signed = _sign_outside(tmp_path, csr_response.content, root, "good")
    with open(tmp_path / "good.pem", "rb") as handle:
        response = client.post(
            reverse("orders:order-upload-certificate", args=[order.pk]), {"file": handle}
        )
    assert response.status_code == 302
    order.refresh_from_db()
    assert order.state == Order.State.ISSUED
    version = order.issued_version
    assert version.certificate.source == "external_csr"
    assert version.chain_complete and version.private_key_id is not None
    assert version.to_x509() == x509.load_pem_x509_certificate(signed)
    assert AuditEvent.objects.filter(action="order.upload_certificate").count() == 1

    # Renewal starts a new CSR order with the same details, waiting for the CA again.
    again = renewal.start_renewal(None, version.certificate)
    assert (again.kind, again.state) == (Order.Kind.EXTERNAL_CSR, Order.State.SUBMITTED)
    assert again.external == order.external and again.is_renewal
    assert again.domains == order.domains and again.csr_pem != order.csr_pem


def test_ov_needs_the_organisation_and_a_ca_name(client_for):
    response = _post_order(client_for("requester"), org_o="", external_ca="")
    assert response.status_code == 400
    body = response.content.decode()
    assert "needs the organisation" in body and "Name the CA" in body
    assert not Order.objects.exists()


def test_only_a_waiting_external_order_takes_an_upload(client_for, tmp_path):
    client = client_for("requester")
    _post_order(client)
    order = Order.objects.get()
    client.post(reverse("orders:order-cancel", args=[order.pk]), {"reason": "bought elsewhere"})
    response = client.post(
        reverse("orders:order-upload-certificate", args=[order.pk]),
        {"file": open(__file__, "rb")},  # noqa: SIM115
    )
    assert response.status_code == 302
    order.refresh_from_db()
    assert order.state == Order.State.CANCELLED
