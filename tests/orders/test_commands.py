"""acme_account, dns_provider, order_cert and renew_due: the automation interface."""

import base64
import json
import secrets

import pytest
from django.core.management import CommandError, call_command

from certconsole.audit.models import AuditEvent
from orders.models import AcmeAccount, DnsProvider, Order
from tests.orders.fixtures import make_account, trust_pebble_root
from tests.realservices import require
from tests.realservices.pebble import Pebble

pytestmark = pytest.mark.django_db(transaction=True)


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_acme_account_add_registers_at_the_ca(project, pebble, capsys):
    call_command(
        "acme_account",
        "add",
        "--project=alpha",
        "--name=pebble",
        f"--directory={pebble.directory_url}",
        "--email=ops@example.com",
        f"--ca-bundle={pebble.ca_bundle_path}",
        "--agree-tos",
        "--json",
    )
    out = _json(capsys)
    account = AcmeAccount.objects.get(project=project, name="pebble")
    assert out["account_uri"] == account.account_uri and "/my-account/" in account.account_uri
    assert account.tos_agreed_at is not None
    assert b"PRIVATE KEY" in account.account_key_pem()
    event = AuditEvent.objects.get(action="issuer.create")
    assert event.source == "cli"


def test_acme_account_add_with_external_account_binding(project, tmp_path, acme_settings, capsys):
    hmac = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    with require(Pebble, tmp_path / "eab", eab_keys={"kid-1": hmac}) as ca:
        args = ["acme_account", "add", "--project=alpha", f"--directory={ca.directory_url}"]
        args += [f"--ca-bundle={ca.ca_bundle_path}", "--agree-tos", "--json"]
        with pytest.raises(CommandError, match="not registered"):
            call_command(*args, "--name=no-eab")
        call_command(*args, "--name=eab", "--eab-kid=kid-1", f"--eab-hmac={hmac}")
    account = AcmeAccount.objects.get(name="eab")
    assert account.eab_kid == "kid-1" and hmac not in account.encrypted_eab_hmac


def test_dns_provider_add_keeps_secrets_encrypted(project, capsys):
    options = {
        "server": "127.0.0.1",
        "port": 5353,
        "zone": "example.com.",
        "tsig_name": "k",
        "tsig_secret": base64.b64encode(b"s" * 32).decode(),
    }
    call_command(
        "dns_provider",
        "add",
        "--project=alpha",
        "--name=bind",
        "--kind=rfc2136",
        f"--options={json.dumps(options)}",
        "--json",
    )
    out = _json(capsys)
    assert out["kind"] == "rfc2136" and "tsig_secret" not in out["options"]
    assert DnsProvider.objects.get().credentials()["tsig_secret"] == options["tsig_secret"]


def test_order_cert_wait_prints_state_and_sha256(project, pebble, console_http, rq_redis, capsys):
    make_account(project, pebble)
    call_command(
        "order_cert",
        "--project=alpha",
        "--issuer=pebble",
        "-d",
        "cli.example.com",
        "-d",
        "www.cli.example.com",
        "--key-type=rsa-2048",
        "--certificate=cli",
        "--wait",
        "--timeout=60",
        "--json",
    )
    out = _json(capsys)
    order = Order.objects.get()
    assert out["state"] == "issued" and out["order"] == order.pk
    assert out["sha256"] == order.issued_version.sha256
    assert out["certificate"] == "cli"
    assert order.issued_version.key_type == "RSA-2048"


def test_order_cert_wait_fails_with_a_non_zero_exit(project, pebble, rq_redis, capsys):
    make_account(project, pebble)  # nobody serves HTTP-01: validation fails
    with pytest.raises(CommandError) as failure:
        call_command(
            "order_cert",
            "--project=alpha",
            "--issuer=pebble",
            "-d",
            "down.example.com",
            "--wait",
            "--json",
        )
    assert failure.value.returncode == 1
    out = _json(capsys)
    assert out["state"] == "failed" and out["sha256"] is None and out["error"]


def test_order_cert_without_wait_returns_at_once(project, pebble, rq_redis, capsys):
    make_account(project, pebble)
    call_command(
        "order_cert", "--project=alpha", "--issuer=pebble", "-d", "q.example.com", "--json"
    )
    assert _json(capsys)["state"] == "pending_validation"
    assert rq_redis.llen("rq:queue:acme") == 1  # a worker takes it from here


def test_order_cert_refuses_bad_names(project, pebble):
    make_account(project, pebble)
    with pytest.raises(CommandError, match="bad_name"):
        call_command("order_cert", "--project=alpha", "--issuer=pebble", "-d", "bad_name..x")


def test_renew_due_json(project, pebble, console_http, rq_redis, capsys):
    trust_pebble_root(pebble)
    make_account(project, pebble, name="renewer")
    call_command(
        "order_cert", "--project=alpha", "--issuer=renewer", "-d", "due.example.com", "--wait"
    )
    order = Order.objects.get()
    policy = order.certificate.renewal_policy
    policy.use_ari, policy.mode, policy.days = False, "days_before", 10_000
    policy.save()
    capsys.readouterr()

    call_command("renew_due", "--json")

    started = _json(capsys)["started"]
    assert len(started) == 1 and started[0]["certificate"] == order.certificate.name
