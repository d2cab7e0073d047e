"""mTLS with certificates ordered through the console, and the CRL served at its public URL:
the handshake succeeds, then fails once the client's version is revoked through the console."""

import ssl

import pytest
from cryptography.hazmat.primitives import serialization
from django.test import Client
from django.urls import reverse

from inventory.pki.keys import private_key_pem
from orders import issuance, private_ca
from orders.models import Order
from tests.orders.test_ca_mtls import SERVER_NAME, client_handshake, serve_once, server_context

pytestmark = pytest.mark.django_db(transaction=True)


def _write(directory, name: str, order: Order) -> tuple:
    version = order.issued_version
    chain = [version.to_x509(), *version.chain_x509()[:-1]]  # leaf and intermediate, no root
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    (directory / f"{name}.pem").write_bytes(pem)
    (directory / f"{name}.key").write_bytes(private_key_pem(version.private_key.unseal()))
    return version, str(directory / f"{name}.pem"), str(directory / f"{name}.key")


def test_mtls_with_console_certificates_fails_after_revocation(project, personas, tmp_path):
    admin = personas["projectadmin"]
    root = private_ca.create_ca(admin, project, name="Mesh Root", subject="CN=Mesh Root")
    issuing = private_ca.create_ca(
        admin, project, name="Mesh", subject="CN=Mesh Issuing", parent=root
    )
    profile = private_ca.add_profile(
        admin, issuing, name="mesh", usage="both", allowed_domains=["*.internal.example"]
    )
    orders = {
        name: issuance.create_order(
            personas["requester"],
            project,
            kind=Order.Kind.PRIVATE_CA,
            profile=profile,
            domains=[domain],
            certificate_name=name,
        )
        for name, domain in (("server", SERVER_NAME), ("client", "worker.internal.example"))
    }
    (tmp_path / "root.pem").write_bytes(root.cert().public_bytes(serialization.Encoding.PEM))
    pki = {"dir": tmp_path, "root": str(tmp_path / "root.pem")}
    for name, order in orders.items():
        assert order.state == Order.State.ISSUED, order.last_error
        pki[name] = _write(tmp_path, name, order)

    crl_url = reverse("ca-crl", args=[issuing.pk, "pem"])
    port, served = serve_once(server_context(pki, crl=Client().get(crl_url).content))
    assert client_handshake(pki, port) == b"pong"
    assert served.done.wait(10) and served.error is None

    issuance.revoke_version(admin, pki["client"][0], 1, "worker decommissioned")
    port, served = serve_once(server_context(pki, crl=Client().get(crl_url).content))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        client_handshake(pki, port)
    assert served.done.wait(10) and served.peer_subject is None
