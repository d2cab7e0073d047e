"""Private CAs through the console: the order page issues at once, openssl verifies the result,
profiles and name constraints refuse on the timeline, revocation reaches the public CRL."""

import subprocess
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.urls import reverse
from django.utils import timezone

from certconsole.audit.models import AuditEvent
from inventory.models import Certificate
from orders import jobs, private_ca, renewal
from orders.models import CaRevocation, CertificateAuthority, Order, RenewalPolicy

pytestmark = pytest.mark.django_db(transaction=True)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def openssl(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], input=data, capture_output=True, check=False)


@pytest.fixture
def cas(personas, project):
    admin = personas["projectadmin"]
    root = private_ca.create_ca(
        admin,
        project,
        name="Internal Root",
        subject="CN=Internal Root,O=Alpha",
        permitted_dns=["internal.example", "localhost"],
    )
    issuing = private_ca.create_ca(
        admin, project, name="Issuing", subject="CN=Internal Issuing", parent=root, days=1000
    )
    profile = private_ca.add_profile(
        admin,
        issuing,
        name="server",
        usage="server",
        allowed_domains=["*.internal.example", "localhost", "other.example"],
        max_days=90,
    )
    return root, issuing, profile


def _order(client, profile, domains: str, **extra):
    payload = {"account": f"profile:{profile.pk}", "domains": domains, "key_type": "ec-p256"}
    return client.post(reverse("orders:order-create"), {**payload, **extra})


def test_requester_orders_from_a_private_ca_and_openssl_verifies_it(client_for, cas, tmp_path):
    root, issuing, profile = cas
    response = _order(client_for("requester"), profile, "app.internal.example\nlocalhost")
    order = Order.objects.get()
    assert response.status_code == 302 and response["Location"] == order.get_absolute_url()
    assert (order.kind, order.state) == (Order.Kind.PRIVATE_CA, Order.State.ISSUED)
    assert [e.kind for e in order.events.all()] == ["draft", "issuing", "issued"]
    version = order.issued_version
    assert version.certificate.source == "private_ca"
    assert version.private_key_id is not None and version.chain_complete
    leaf = version.to_x509()
    (tmp_path / "root.pem").write_bytes(_pem(root.cert()))
    (tmp_path / "chain.pem").write_bytes(_pem(issuing.cert()))
    (tmp_path / "leaf.pem").write_bytes(_pem(leaf))
    result = openssl(
        "verify",
        "-CAfile",
        str(tmp_path / "root.pem"),
        "-untrusted",
        str(tmp_path / "chain.pem"),
        "-purpose",
        "sslserver",
        str(tmp_path / "leaf.pem"),
    )
    assert result.returncode == 0, result.stderr
    points = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert points[0].full_name[0].value == f"http://testserver/ca/{issuing.pk}/crl.crl"
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc <= timedelta(days=90, minutes=5)
    signed = AuditEvent.objects.filter(action="ca.sign")
    assert signed.count() == 3  # the root itself, the intermediate, the leaf
    page = client_for("requester").get(order.get_absolute_url())
    assert b"Internal Issuing" not in page.content or b"Issued" in page.content


def test_profile_and_name_constraints_refuse_on_the_order_timeline(client_for, cas):
    _, _, profile = cas
    client = client_for("requester")
    _order(client, profile, "other.example")
    refused = Order.objects.get()
    assert refused.state == Order.State.FAILED
    assert "outside the CA's name constraints" in refused.last_error
    page = client.get(refused.get_absolute_url())
    assert b"outside the CA&#x27;s name constraints" in page.content
    _order(client, profile, "db.elsewhere.test", days="400")
    second = Order.objects.exclude(pk=refused.pk).get()
    assert second.state == Order.State.FAILED
    assert "outside the allowed domains" in second.last_error
    assert "longer than the maximum of 90 days" in second.last_error
    assert not Certificate.objects.exists()


def test_orders_wait_for_approval_then_issue_when_approved(client_for, cas, project, personas):
    from orders.models import OrderPolicy

    OrderPolicy.objects.create(project=project, require_approval=True)
    _order(client_for("requester"), cas[2], "svc.internal.example")
    order = Order.objects.get()
    assert order.state == Order.State.AWAITING_APPROVAL
    client_for("projectadmin").post(
        reverse("orders:order-approve", args=[order.pk]), {"reason": "internal service"}
    )
    order.refresh_from_db()
    assert order.state == Order.State.ISSUED and order.approved_by == personas["projectadmin"]


def test_revoking_through_the_ui_lists_the_serial_in_the_public_crl(client_for, cas):
    from django.test import Client

    client = Client()  # nobody signed in: a CRL is public
    _, issuing, profile = cas
    _order(client_for("requester"), profile, "gone.internal.example")
    version = Order.objects.get().issued_version
    crl_url = reverse("ca-crl", args=[issuing.pk, "pem"])
    first = client.get(crl_url)
    assert first.status_code == 200 and b"BEGIN X509 CRL" in first.content
    response = client_for("projectadmin").post(
        reverse("orders:version-revoke", args=[version.certificate_id, version.sha256]),
        {"reason_code": "1", "reason": "laptop stolen"},
    )
    assert response.status_code == 302
    version.refresh_from_db()
    assert version.status == "revoked" and version.revocation_reason == "Key compromise"
    assert CaRevocation.objects.get().reason == "key_compromise"
    text = openssl("crl", "-noout", "-text", data=client.get(crl_url).content)
    assert text.returncode == 0, text.stderr
    assert version.serial.upper() in text.stdout.decode().replace(":", "").upper()
    assert b"Key Compromise" in text.stdout
    der = client.get(reverse("ca-crl", args=[issuing.pk, "crl"]))
    assert der["Content-Type"] == "application/pkix-crl"
    parsed = openssl("crl", "-inform", "DER", "-noout", "-text", data=der.content)
    assert parsed.returncode == 0 and b"CRL Number: " in parsed.stdout
    issuing.refresh_from_db()
    assert issuing.next_crl_number == 3  # one for the first fetch, one for the revocation
    detail = client_for("viewer").get(issuing.get_absolute_url())
    assert version.serial.encode() in detail.content


def test_the_daily_job_re_signs_every_crl(cas):
    _, issuing, _ = cas
    assert jobs.regenerate_crls() == 2
    assert jobs.regenerate_crls() == 2
    issuing.refresh_from_db()
    crl = x509.load_der_x509_crl(bytes(issuing.crl_der))
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
    assert crl.is_signature_valid(issuing.cert().public_key())


def test_private_ca_certificates_renew_through_the_same_policy(client_for, cas):
    _order(client_for("requester"), cas[2], "renew.internal.example")
    first = Order.objects.get()
    certificate = first.certificate
    policy = RenewalPolicy.objects.get(certificate=certificate)
    assert policy.issuer is None
    assert renewal.renew_due() == []  # not due yet: two thirds of 90 days
    started = renewal.renew_due(now=timezone.now() + timedelta(days=70))
    assert len(started) == 1
    order = started[0]
    assert (order.kind, order.profile, order.state) == (first.kind, first.profile, "issued")
    certificate.refresh_from_db()
    assert certificate.current_version == order.issued_version != first.issued_version


def test_ca_pages_create_root_profile_and_download_bundles(client_for, project, tmp_path):
    assert client_for("requester").get(reverse("orders:ca-create")).status_code == 403
    admin = client_for("projectadmin")
    response = admin.post(
        reverse("orders:ca-create"),
        {
            "name": "Lab",
            "kind": "root",
            "subject": "CN=Lab Root",
            "key_type": "rsa-3072",
            "days": "365",
            "permitted_dns": "lab.example",
        },
    )
    ca = CertificateAuthority.objects.get(name="Lab")
    assert response.status_code == 302 and response["Location"] == ca.get_absolute_url()
    assert ca.private_key.encrypted_pkcs8 and ca.permitted_dns == ["lab.example"]
    response = admin.post(
        reverse("orders:ca-profile-create", args=[ca.pk]),
        {"name": "mtls", "usage": "client", "max_days": "30", "san_types": ["dns", "uri"]},
    )
    assert response.status_code == 302
    assert ca.profiles.get().san_types == ["dns", "uri"]
    bad = admin.post(
        reverse("orders:ca-profile-create", args=[ca.pk]),
        {
            "name": "bad",
            "usage": "server",
            "max_days": "30",
            "allowed_domains": "a*b.example",
            "san_types": ["dns"],
        },
    )
    assert bad.status_code == 400 and "allowed domain" in bad.content.decode()
    viewer = client_for("viewer")  # the same test client, now signed in as the viewer
    page = viewer.get(ca.get_absolute_url())
    assert b"Lab Root" in page.content and b"Add a profile" not in page.content
    pem = viewer.get(reverse("orders:ca-download", args=[ca.pk, "pem"]))
    assert x509.load_pem_x509_certificate(pem.content) == ca.cert()
    der = viewer.get(reverse("orders:ca-download", args=[ca.pk, "der"]))
    assert x509.load_der_x509_certificate(der.content) == ca.cert()
    bundle = viewer.get(reverse("orders:ca-download", args=[ca.pk, "bundle"]))
    assert b"BEGIN CERTIFICATE" in bundle.content
    jks = viewer.get(reverse("orders:ca-download", args=[ca.pk, "jks"]))
    assert jks.content[:4] == b"\xfe\xed\xfe\xed"
    (tmp_path / "trust.jks").write_bytes(jks.content)
    assert AuditEvent.objects.filter(action="ca.create").count() == 1
    assert AuditEvent.objects.filter(action="ca.profile_create").count() == 1


def test_intermediate_signed_by_an_external_root(client_for, project, tmp_path):
    from tests.pki.factory import make_ca

    admin = client_for("projectadmin")
    admin.post(
        reverse("orders:ca-create"),
        {
            "name": "Sub",
            "kind": "external",
            "subject": "CN=Sub CA",
            "key_type": "ec-p384",
            "days": "365",
        },
    )
    ca = CertificateAuthority.objects.get(name="Sub")
    assert ca.status == "pending_csr"
    csr = admin.get(reverse("orders:ca-csr", args=[ca.pk]))
    external = make_ca("External Root")
    (tmp_path / "sub.csr").write_bytes(csr.content)
    (tmp_path / "root.pem").write_bytes(external.pem)
    (tmp_path / "root.key").write_bytes(external.key_pem)
    (tmp_path / "ext.cnf").write_text(
        "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
    )
    signed = openssl(
        "x509",
        "-req",
        "-in",
        str(tmp_path / "sub.csr"),
        "-CA",
        str(tmp_path / "root.pem"),
        "-CAkey",
        str(tmp_path / "root.key"),
        "-CAcreateserial",
        "-days",
        "200",
        "-extfile",
        str(tmp_path / "ext.cnf"),
        "-out",
        str(tmp_path / "sub.pem"),
    )
    assert signed.returncode == 0, signed.stderr
    with open(tmp_path / "sub.pem", "rb") as cert, open(tmp_path / "root.pem", "rb") as chain:
        response = admin.post(
            reverse("orders:ca-upload-signed", args=[ca.pk]), {"certificate": cert, "chain": chain}
        )
    assert response.status_code == 302
    ca.refresh_from_db()
    assert ca.status == "active" and ca.chain()[0] == external.cert
    profile = private_ca.add_profile(None, ca, name="srv")
    _order(client_for("requester"), profile, "x.example.net")
    leaf = Order.objects.get().issued_version.to_x509()
    (tmp_path / "leaf.pem").write_bytes(_pem(leaf))
    result = openssl(
        "verify",
        "-CAfile",
        str(tmp_path / "root.pem"),
        "-untrusted",
        str(tmp_path / "sub.pem"),
        str(tmp_path / "leaf.pem"),
    )
    assert result.returncode == 0, result.stderr


def test_seed_demo_issues_localhost_from_the_demo_ca_once(capsys):
    import json

    from django.core.management import call_command

    call_command("seed_demo", "--password", "demo-pass-123", "--json")
    first = json.loads(capsys.readouterr().out)
    call_command("seed_demo", "--password", "demo-pass-123", "--json")
    second = json.loads(capsys.readouterr().out)
    assert set(first) == {"project", "created", "users", "certificates"}
    assert first["certificates"][0]["name"] == "localhost"
    assert all(c["created"] and c["sha256"] for c in first["certificates"])
    assert not any(c["created"] for c in second["certificates"])
    assert CertificateAuthority.objects.filter(name="Demo CA").count() == 1
    localhost = Certificate.objects.get(project__slug="demo", name="localhost")
    assert localhost.current_version.dns_names == ["localhost"]
    assert localhost.has_private_key
