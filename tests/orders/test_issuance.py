"""The order state machine end to end against a real Pebble (and BIND9 for RFC 2136)."""

import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from certconsole.audit.models import AuditEvent
from inventory.models import CertificateVersion
from orders import issuance, jobs, renewal
from orders.models import DnsProvider, Order, OrderPolicy
from tests.orders.fixtures import drive, make_account, trust_pebble_root

pytestmark = pytest.mark.django_db(transaction=True)
State = Order.State
_PEM = Encoding.PEM


def _order(project, account, domains, actor=None, **extra):
    return issuance.create_order(actor, project, account=account, domains=domains, **extra)


def test_http01_for_two_names_issues_a_version_with_key_and_complete_chain(
    project, account, console_http, rq_redis
):
    order = _order(project, account, ["www.example.com", "shop.example.com"])

    order = drive(order)

    assert order.state == State.ISSUED, order.last_error
    version = order.issued_version
    assert sorted(version.dns_names) == ["shop.example.com", "www.example.com"]
    assert version.private_key is not None
    assert version.chain_complete
    assert version.certificate.source == "acme"
    assert version.certificate.current_version_id == version.pk
    assert order.encrypted_private_key == ""
    leaf = version.to_x509()
    key = version.private_key.unseal()
    assert key.public_key().public_numbers() == leaf.public_key().public_numbers()
    kinds = [e.kind for e in order.events.all()]
    assert kinds[:2] == ["draft", "pending_validation"]
    assert {"placed", "answer", "validating", "ready", "issuing", "issued"} <= set(kinds)
    states = AuditEvent.objects.filter(action="order.transition", target_id=str(order.pk))
    assert [e.detail["to_state"] for e in states.order_by("id")] == [
        "pending_validation",
        "validating",
        "ready",
        "issuing",
        "issued",
    ]


def test_dns01_wildcard_through_rfc2136_on_bind(project, pebble_on_bind, bind9, rq_redis):
    account = make_account(project, pebble_on_bind)
    provider = DnsProvider.create(
        None,
        project,
        name="bind",
        kind="rfc2136",
        options={
            "server": "127.0.0.1",
            "port": bind9.port,
            "zone": "test.",
            "tsig_name": bind9.tsig_name,
            "tsig_secret": bind9.tsig_secret,
            "tsig_algorithm": bind9.tsig_algorithm,
        },
    )
    assert "tsig_secret" not in provider.options
    methods = {"*.shop.test": {"method": "dns-01", "dns_provider": provider.pk}}

    order = drive(_order(project, account, ["*.shop.test"], methods=methods))

    assert order.state == State.ISSUED, order.last_error
    assert order.issued_version.dns_names == ["*.shop.test"]
    assert bind9.query_txt("_acme-challenge.shop.test") == []  # cleaned up after validation


def test_dns01_manual_waits_for_the_user_then_issues(project, account, pebble, personas, rq_redis):
    order = _order(project, account, ["*.manual.example.com"], actor=personas["requester"])
    order = drive(order, until=lambda o: o.next_attempt_at is None)
    assert order.state == State.PENDING_VALIDATION
    authz = order.authorizations.get()
    challenge = authz.chosen_challenge()
    assert challenge.txt_name == "_acme-challenge.manual.example.com"

    assert issuance.check_dns(personas["requester"], authz)["ok"] is False
    pebble.set_txt(challenge.txt_name, challenge.txt_value)
    assert issuance.check_dns(personas["requester"], authz)["ok"] is True
    issuance.submit_challenge(personas["requester"], authz)

    order = drive(order)
    assert order.state == State.ISSUED, order.last_error
    assert order.requested_by == personas["requester"]


def test_invalid_challenge_fails_with_the_cas_detail(project, account, pebble, rq_redis):
    failures = []
    uid = "test-order-failed"
    issuance.order_failed.connect(lambda **kw: failures.append(kw), weak=False, dispatch_uid=uid)
    # Nobody serves HTTP-01 on Pebble's port: the VA cannot connect.
    try:
        order = drive(_order(project, account, ["nowhere.example.com"]))
    finally:
        issuance.order_failed.disconnect(dispatch_uid=uid)
    assert [f["order_id"] for f in failures] == [order.pk]

    assert order.state == State.FAILED
    assert "nowhere.example.com" in order.last_error
    challenge = order.authorizations.get().chosen_challenge()
    assert challenge.status == "invalid" and challenge.error


def test_orders_wait_for_approval_by_another_project_admin(
    project, account, console_http, personas, rq_redis
):
    OrderPolicy.objects.create(project=project, require_approval=True)
    requester, admin = personas["requester"], personas["projectadmin"]
    order = _order(project, account, ["approved.example.com"], actor=requester)
    assert order.state == State.AWAITING_APPROVAL
    assert issuance.advance(order.pk) == State.AWAITING_APPROVAL  # a worker cannot skip it

    with pytest.raises(issuance.PermissionDenied):
        issuance.approve(requester, order, "self-approval")
    issuance.approve(admin, order, "ticket 42")

    order = drive(order)
    assert order.state == State.ISSUED and order.approved_by == admin
    approval = AuditEvent.objects.get(action="order.approve")
    assert approval.reason == "ticket 42" and approval.actor_name == "projectadmin"


def test_rejection_cancels_the_order_with_the_reason(project, account, personas, rq_redis):
    OrderPolicy.objects.create(project=project, require_approval=True)
    order = _order(project, account, ["rejected.example.com"], actor=personas["requester"])

    issuance.reject(personas["projectadmin"], order, "not our domain")

    order.refresh_from_db()
    assert order.state == State.CANCELLED and "not our domain" in order.last_error
    assert AuditEvent.objects.filter(action="order.reject", reason="not our domain").exists()


def test_ca_outage_mid_order_retries_and_completes(
    project, account, pebble, console_http, rq_redis
):
    order = drive(
        _order(project, account, ["outage.example.com"]),
        until=lambda o: o.state == State.VALIDATING,
        max_steps=1,
    )
    pebble.stop()
    issuance.advance(order.pk)
    order.refresh_from_db()
    assert order.state == State.VALIDATING
    assert order.attempts == 1 and "reach the CA" in order.last_error

    pebble.start()  # a new Pebble (and DNS): it has forgotten the account and the order
    trust_pebble_root(pebble)
    order = drive(order)

    assert order.state == State.ISSUED, order.last_error
    assert order.issued_version.chain_complete
    assert order.events.filter(kind="retry").count() >= 2


def test_a_worker_killed_mid_step_is_resumed_by_the_sweep(
    project, account, console_http, rq_redis, settings
):
    order = drive(
        _order(project, account, ["crash.example.com"]),
        until=lambda o: o.state == State.READY,
        max_steps=1,
    )
    # A worker claims the order, finalizes at the CA, then dies before downloading.
    settings.ACME_LEASE_SECONDS = 0.3
    assert issuance.claim(order.pk)
    assert issuance._transition(order, State.READY, State.ISSUING, None, "Finalizing.")
    account.client().finalize(order.acme_order_url, order.csr_pem.encode())
    # ...killed. Its lease keeps other workers away until it lapses:
    assert issuance.advance(order.pk) == State.ISSUING
    assert not issuance.due_orders().filter(pk=order.pk).exists()
    time.sleep(0.4)
    rq_redis.flushdb()

    assert jobs.sweep_orders() == 1
    assert rq_redis.llen("rq:queue:acme") == 1
    jobs.advance_order(order.pk)  # what the re-enqueued job runs

    order.refresh_from_db()
    assert order.state == State.ISSUED, order.last_error
    assert order.issued_version is not None


def test_renew_due_issues_a_new_version_and_supersedes_the_old(
    project, account, console_http, rq_redis
):
    first = drive(_order(project, account, ["renew.example.com"]))
    certificate = first.certificate
    policy = certificate.renewal_policy
    policy.use_ari = False
    policy.mode = policy.Mode.DAYS_BEFORE
    policy.days = 10_000  # due at once
    policy.save()

    started = renewal.renew_due()
    assert [o.certificate_id for o in started] == [certificate.pk]
    assert renewal.renew_due() == []  # one renewal at a time
    second = drive(started[0])

    assert second.state == State.ISSUED, second.last_error
    certificate.refresh_from_db()
    assert certificate.current_version_id == second.issued_version_id
    old = CertificateVersion.objects.get(pk=first.issued_version_id)
    assert old.status == CertificateVersion.Status.SUPERSEDED
    assert second.issued_version.spki_sha256 != old.spki_sha256  # a new key by default


def test_revocation_marks_the_version_revoked(project, account, console_http, personas, rq_redis):
    order = drive(_order(project, account, ["revoke.example.com"]))
    version = order.issued_version

    issuance.revoke_version(personas["projectadmin"], version, 4, "replaced")

    version.refresh_from_db()
    assert version.status == CertificateVersion.Status.REVOKED
    assert version.revocation_reason == "Superseded"
    assert version.certificate.revoked
    assert AuditEvent.objects.filter(action="certificate.revoke", reason="replaced").exists()
    with pytest.raises(issuance.OrderError):
        issuance.revoke_version(personas["projectadmin"], version, 4, "again")


def test_supplied_csr_keeps_the_key_out_of_the_console(project, account, console_http, rq_redis):
    from inventory.pki.keys import generate_private_key

    csr = issuance.build_csr(generate_private_key("ec-p256"), ["csr.example.com"])
    order = drive(_order(project, account, ["csr.example.com"], csr_pem=csr))

    assert order.state == State.ISSUED, order.last_error
    assert order.csr_supplied and order.issued_version.private_key is None
    leaf = order.issued_version.to_x509()
    assert leaf.fingerprint(hashes.SHA256()).hex() == order.issued_version.sha256
    assert isinstance(leaf, x509.Certificate)


def test_authorizations_the_ca_already_holds_are_not_answered_again(
    project, tmp_path, acme_settings, rq_redis
):
    from tests.orders.fixtures import serve_console
    from tests.realservices import require
    from tests.realservices.pebble import Pebble

    with require(Pebble, tmp_path / "reuse", env={"PEBBLE_AUTHZREUSE": "100"}) as ca:
        acme_settings.ACME_DNS_NAMESERVERS = [("127.0.0.1", ca.dns_port)]
        server = serve_console(ca.http01_port)
        try:
            account = make_account(project, ca)
            first = drive(_order(project, account, ["reuse.example.com"]))
            second = drive(_order(project, account, ["reuse.example.com"]))
        finally:
            server.shutdown()
            server.server_close()

    assert first.state == second.state == State.ISSUED
    assert first.events.filter(kind="answer").count() == 1
    assert second.events.filter(kind="answer").count() == 0
    assert second.events.filter(message__contains="already holds a valid").exists()


def test_issues_with_pebbles_nonce_rejection_and_validation_delays_on(
    project, tmp_path, acme_settings, rq_redis
):
    from tests.orders.fixtures import serve_console
    from tests.realservices import require
    from tests.realservices.pebble import Pebble

    defaults = {"PEBBLE_WFE_NONCEREJECT": None, "PEBBLE_VA_NOSLEEP": None}
    with require(Pebble, tmp_path / "noisy", env=defaults) as ca:
        acme_settings.ACME_DNS_NAMESERVERS = [("127.0.0.1", ca.dns_port)]
        server = serve_console(ca.http01_port)
        try:
            account = make_account(project, ca)
            names = ["n1.example.com", "n2.example.com", "n3.example.com"]
            order = drive(_order(project, account, names), timeout=120)
        finally:
            server.shutdown()
            server.server_close()

    assert order.state == State.ISSUED, order.last_error


def test_without_ari_from_the_ca_renewal_falls_back_to_two_thirds_of_the_lifetime(
    project, account, console_http, rq_redis
):
    """Debian's Pebble offers no renewalInfo (ARI parsing is tested in test_acme_client)."""
    order = drive(_order(project, account, ["ari.example.com"]))
    version = order.issued_version
    policy = order.certificate.renewal_policy
    assert policy.use_ari and policy.issuer == account
    assert account.client().renewal_info(version.to_x509().public_bytes(_PEM)) is None
    lifetime = version.not_after - version.not_before
    assert renewal.due_at(policy, version, account) == version.not_before + lifetime * 2 / 3
    assert renewal.renew_due() == []  # not due yet


def test_a_failed_renewal_is_mailed_to_the_owner(
    project, account, pebble, console_http, rq_redis, mailoutbox
):
    first = drive(_order(project, account, ["fails.example.com"]))
    certificate = first.certificate
    certificate.label_owner = "owner@example.test"
    certificate.save(update_fields=["label_owner"])
    # The name now points where nothing listens (the console serves 127.0.0.1 only), so the
    # renewal's HTTP-01 validation fails; the server itself stays up for the teardown.
    pebble.add_a("fails.example.com", "127.0.0.2")
    policy = certificate.renewal_policy
    policy.use_ari, policy.mode, policy.days = False, policy.Mode.DAYS_BEFORE, 10_000
    policy.save()
    [renewing] = renewal.renew_due()
    renewed = drive(renewing)
    assert renewed.state == State.FAILED
    assert "127.0.0.2" in renewed.last_error, renewed.last_error  # the CA could not connect
    [notice] = [m for m in mailoutbox if "owner@example.test" in m.to]
    assert "Automatic renewal failed" in notice.body
    assert "fails.example.com" in notice.body


def test_due_at_two_thirds_of_the_lifetime_or_days_before_expiry(inventory_cert):
    from orders.models import RenewalPolicy

    version = inventory_cert.current_version
    policy = RenewalPolicy(certificate=inventory_cert, use_ari=False)
    lifetime = version.not_after - version.not_before
    assert renewal.due_at(policy, version) == version.not_before + lifetime * 2 / 3
    policy.mode, policy.days = RenewalPolicy.Mode.DAYS_BEFORE, 30
    assert (version.not_after - renewal.due_at(policy, version)).days == 30


def test_manual_dns_can_submit_itself_once_the_record_is_visible(
    project, account, pebble, acme_settings, rq_redis
):
    acme_settings.ACME_DNS_RECHECK_SECONDS = 0.1
    order = _order(project, account, ["*.auto.example.com"], submit_when_dns_ok=True)
    order = drive(order, until=lambda o: o.authorizations.exists(), max_steps=1)
    challenge = order.authorizations.get().chosen_challenge()
    issuance.advance(order.pk)
    order.refresh_from_db()
    assert order.state == State.PENDING_VALIDATION and order.next_attempt_at is not None

    pebble.set_txt(challenge.txt_name, challenge.txt_value)
    order = drive(order)

    assert order.state == State.ISSUED, order.last_error
    assert order.events.filter(message__contains="the TXT record is visible").exists()


def test_dns01_follows_a_cname_delegation_to_a_validation_zone(
    project, pebble_on_bind, bind9, rq_redis
):
    import dns.query
    import dns.update

    update = dns.update.UpdateMessage(bind9.zone, keyring=bind9.keyring, keyname=bind9.tsig_name)
    update.add("_acme-challenge.deleg.test.", 5, "CNAME", "deleg.validation.test.")
    dns.query.tcp(update, bind9.host, port=bind9.port, timeout=5)
    account = make_account(project, pebble_on_bind)
    provider = DnsProvider.create(
        None,
        project,
        name="bind",
        kind="rfc2136",
        options={
            "server": "127.0.0.1",
            "port": bind9.port,
            "zone": "test.",
            "tsig_name": bind9.tsig_name,
            "tsig_secret": bind9.tsig_secret,
        },
    )
    methods = {"deleg.test": {"method": "dns-01", "dns_provider": provider.pk}}

    order = drive(_order(project, account, ["deleg.test"], methods=methods))

    assert order.state == State.ISSUED, order.last_error
    assert order.events.filter(message__contains="published at deleg.validation.test").exists()
    assert bind9.query_txt("deleg.validation.test") == []
