"""ca create | profile | show | crl and order_cert --issuer CA: the automation interface."""

import json
import subprocess

import pytest
from cryptography import x509
from django.core.management import CommandError, call_command

from certconsole.audit.models import AuditEvent
from orders.models import CertificateAuthority, Order

pytestmark = pytest.mark.django_db(transaction=True)


def run_json(capsys, *args) -> dict:
    call_command(*args, "--json")
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_ca_create_profile_and_order_cert_issue_through_the_order_path(project, capsys, tmp_path):
    root = run_json(
        capsys, "ca", "create", "--project=alpha", "--name=Ops Root", "--key-type=ec-p384",
        "--subject=CN=Ops Root,O=Alpha", "--days=3650", "--permit-dns", "ops.example",
        "localhost",
    )  # fmt: skip
    assert root["status"] == "active" and root["permitted_dns"] == ["ops.example", "localhost"]
    sub = run_json(
        capsys, "ca", "create", "--project=alpha", "--name=Ops Issuing", "--parent=Ops Root",
        "--key-type=rsa-3072", "--days=365",
    )  # fmt: skip
    assert sub["parent"] == "Ops Root" and sub["subject"] == "CN=Ops Issuing"
    profile = run_json(
        capsys, "ca", "profile", "--ca=Ops Issuing", "--name=web", "--usage=both",
        "--max-days=30", "--allow", "*.ops.example", "localhost",
    )  # fmt: skip
    assert profile["allowed_domains"] == ["*.ops.example", "localhost"]
    issued = run_json(
        capsys, "order_cert", "--project=alpha", "--issuer=Ops Issuing", "--profile=web",
        "-d", "api.ops.example", "-d", "localhost",
    )  # fmt: skip
    assert (issued["kind"], issued["state"]) == ("private_ca", "issued") and issued["sha256"]
    order = Order.objects.get(pk=issued["order"])
    assert order.issued_version.dns_names == ["api.ops.example", "localhost"]

    call_command("ca", "show", "Ops Root", "--pem")
    root_pem = capsys.readouterr().out.encode()
    call_command("ca", "show", "Ops Issuing", "--pem")
    sub_pem = capsys.readouterr().out.encode()
    assert (
        x509.load_pem_x509_certificate(root_pem).subject.rfc4514_string() == "CN=Ops Root,O=Alpha"
    )
    (tmp_path / "root.pem").write_bytes(root_pem)
    (tmp_path / "sub.pem").write_bytes(sub_pem)
    (tmp_path / "leaf.pem").write_bytes(
        order.issued_version.to_x509().public_bytes(encoding=_pem_encoding())
    )
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(tmp_path / "root.pem"), "-untrusted",
         str(tmp_path / "sub.pem"), str(tmp_path / "leaf.pem")],
        capture_output=True, check=False,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stderr

    call_command("ca", "crl", "Ops Issuing")
    crl_pem = capsys.readouterr().out.encode()
    crl = x509.load_pem_x509_crl(crl_pem)
    assert crl.issuer.rfc4514_string() == "CN=Ops Issuing"
    assert AuditEvent.objects.filter(action="ca.sign", source="cli").count() >= 4


def test_order_cert_refusal_is_reported_and_exits_nonzero_with_wait(project, capsys):
    run_json(capsys, "ca", "create", "--project=alpha", "--name=Tight", "--permit-dns", "a.test")
    run_json(capsys, "ca", "profile", "--ca=Tight", "--name=srv", "--usage=server")
    refused = run_json(capsys, "order_cert", "--project=alpha", "--issuer=Tight", "-d", "b.test")
    assert refused["state"] == "failed"
    assert "outside the CA's name constraints" in refused["error"]
    with pytest.raises(CommandError, match="failed"):
        call_command(
            "order_cert", "--project=alpha", "--issuer=Tight", "-d", "c.test", "--wait", "--json"
        )


def test_ca_commands_say_what_is_wrong(project, capsys):
    with pytest.raises(CommandError, match="not a distinguished name"):
        call_command("ca", "create", "--project=alpha", "--name=Bad", "--subject=nonsense")
    with pytest.raises(CommandError, match="No CA named"):
        call_command("ca", "show", "Nope", "--pem")
    with pytest.raises(CommandError, match="No ACME account or private CA"):
        call_command("order_cert", "--project=alpha", "--issuer=Nope", "-d", "a.example.com")
    external = run_json(capsys, "ca", "create", "--project=alpha", "--name=Sub", "--external-root")
    assert external["status"] == "pending_csr" and "CERTIFICATE REQUEST" in external["csr_pem"]
    with pytest.raises(CommandError, match="not active"):
        call_command("ca", "crl", "Sub")
    assert CertificateAuthority.objects.count() == 1


def _pem_encoding():
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.PEM
