"""The order pages: form validation, the live timeline partial, approvals, HTTP-01 serving."""

import pytest
from django.urls import reverse

from certconsole.audit.models import AuditEvent
from orders import issuance
from orders.models import Authorization, Challenge, DnsProvider, Order, OrderPolicy

pytestmark = pytest.mark.django_db
State = Order.State


def _post_order(client, account, **data):
    payload = {"account": account.pk, "method": "http-01", "key_type": "ec-p256", **data}
    return client.post(reverse("orders:order-create"), payload)


def test_requester_places_an_order_and_lands_on_its_page(client_for, offline_account):
    client = client_for("requester")
    response = _post_order(client, offline_account, domains="www.example.com\nAPI.example.com")

    order = Order.objects.get()
    assert response.status_code == 302 and response.url == order.get_absolute_url()
    assert order.domains == ["www.example.com", "api.example.com"]
    assert order.state == State.PENDING_VALIDATION
    assert order.encrypted_private_key and "BEGIN CERTIFICATE REQUEST" in order.csr_pem
    assert AuditEvent.objects.filter(action="order.create", actor_name="requester").exists()


def test_each_bad_name_gets_its_own_message_and_the_input_is_kept(client_for, offline_account):
    client = client_for("requester")
    response = _post_order(client, offline_account, domains="good.example.com\nbad_name..x\ncom")

    assert response.status_code == 400
    errors = response.context["form"].errors["domains"]
    assert len(errors) == 2 and any("bad_name..x" in e for e in errors)
    assert any("“com”" in e for e in errors)
    assert "good.example.com" in response.content.decode()
    assert not Order.objects.exists()


def test_a_wildcard_needs_dns01(client_for, offline_account):
    response = _post_order(client_for("requester"), offline_account, domains="*.example.com")

    assert response.status_code == 400
    assert "wildcard" in response.context["form"].errors["method"][0]


def test_per_name_methods_and_a_dns_provider(client_for, offline_account, project):
    provider = DnsProvider.objects.create(project=project, name="ns1", kind="rfc2136")
    response = _post_order(
        client_for("requester"),
        offline_account,
        domains="example.com\n*.example.com\nwww.example.com",
        overrides="*.example.com dns-01:ns1\nwww.example.com dns-01",
    )
    assert response.status_code == 302, response.context["form"].errors
    assert Order.objects.get().methods == {
        "example.com": {"method": "http-01", "dns_provider": None},
        "*.example.com": {"method": "dns-01", "dns_provider": provider.pk},
        "www.example.com": {"method": "dns-01", "dns_provider": None},
    }


def test_an_unknown_override_is_a_form_error(client_for, offline_account):
    response = _post_order(
        client_for("requester"),
        offline_account,
        domains="example.com",
        overrides="example.com dns-01:nowhere",
    )
    assert response.status_code == 400
    assert "dns-01:nowhere" in response.context["form"].errors["overrides"][0]


def test_a_supplied_csr_gives_the_names_and_no_key_is_made(client_for, offline_account):
    from inventory.pki.keys import generate_private_key

    csr = issuance.build_csr(generate_private_key("ec-p256"), ["csr.example.com"]).decode()
    response = _post_order(client_for("requester"), offline_account, csr=csr)

    assert response.status_code == 302
    order = Order.objects.get()
    assert order.domains == ["csr.example.com"]
    assert order.csr_supplied and not order.encrypted_private_key


def test_a_csr_for_other_names_is_refused(client_for, offline_account):
    from inventory.pki.keys import generate_private_key

    csr = issuance.build_csr(generate_private_key("ec-p256"), ["other.example.com"]).decode()
    response = _post_order(
        client_for("requester"), offline_account, domains="mine.example.com", csr=csr
    )

    assert response.status_code == 400
    assert "other names" in response.context["form"].errors["csr"][0]


def _order(account, state=State.PENDING_VALIDATION, **extra):
    return Order.objects.create(
        project=account.project, account=account, domains=["a.example.com"], state=state, **extra
    )


def test_the_timeline_partial_polls_until_the_order_ends(client_for, offline_account):
    order = _order(offline_account)
    client = client_for("viewer")
    url = reverse("orders:order-detail", args=[order.pk])

    live = client.get(url, headers={"HX-Request": "true"})
    assert live.status_code == 200
    assert 'hx-trigger="every 2s"' in live.content.decode()
    assert "<html" not in live.content.decode()

    Order.objects.filter(pk=order.pk).update(state=State.FAILED, last_error="CA said no")
    final = client.get(url, headers={"HX-Request": "true"})
    assert final.status_code == 286  # htmx stops polling
    assert "CA said no" in final.content.decode()
    assert "every 2s" not in final.content.decode()
    assert 'id="order-actions" hx-swap-oob="true"' in final.content.decode()  # no more cancel


def test_manual_dns_shows_the_exact_record_with_copy_buttons(client_for, offline_account):
    order = _order(offline_account)
    authz = Authorization.objects.create(
        order=order, identifier="a.example.com", url="https://ca/authz/1", method="dns-01"
    )
    Challenge.objects.create(
        authorization=authz,
        type="dns-01",
        url="https://ca/ch/1",
        token="tok",
        txt_name="_acme-challenge.a.example.com",
        txt_value="VALUE123",
    )
    page = client_for("requester").get(order.get_absolute_url()).content.decode()

    assert "_acme-challenge.a.example.com" in page and "VALUE123" in page
    assert page.count("data-copy=") >= 2
    assert "Check DNS" in page and "Submit to CA" in page


def test_submit_to_ca_marks_the_authorization_confirmed(client_for, offline_account):
    order = _order(offline_account)
    authz = Authorization.objects.create(
        order=order, identifier="a.example.com", url="https://ca/authz/1", method="dns-01"
    )
    client = client_for("requester")
    response = client.post(reverse("orders:authz-submit", args=[authz.pk]))

    assert response.status_code == 302
    authz.refresh_from_db()
    assert authz.confirmed
    assert AuditEvent.objects.filter(action="order.submit_challenge").exists()


@pytest.mark.parametrize(
    "name",
    [
        "orders:order-approve",
        "orders:order-reject",
        "orders:order-cancel",
        "orders:authz-submit",
        "orders:authz-check-dns",
        "orders:order-policy",
    ],
)
def test_mutating_views_reject_get(client_for, offline_account, name):
    order = _order(offline_account)
    authz = Authorization.objects.create(order=order, identifier="a", url="https://x/1")
    args = [] if name == "orders:order-policy" else [authz.pk if "authz" in name else order.pk]
    assert client_for("projectadmin").get(reverse(name, args=args)).status_code == 405


def test_approval_needs_another_admin_and_a_reason(client_for, personas, offline_account):
    order = _order(
        offline_account, state=State.AWAITING_APPROVAL, requested_by=personas["projectadmin"]
    )
    url = reverse("orders:order-approve", args=[order.pk])
    client = client_for("projectadmin")

    assert client.post(url, {"reason": "mine"}).status_code == 403
    assert client_for("requester").post(url, {"reason": "x"}).status_code == 403
    order.requested_by = personas["requester"]
    order.save()
    client = client_for("projectadmin")
    client.post(url, {"reason": ""})
    order.refresh_from_db()
    assert order.state == State.AWAITING_APPROVAL  # no reason, no approval

    client.post(url, {"reason": "change 7"})
    order.refresh_from_db()
    assert order.state == State.PENDING_VALIDATION and order.approved_by == personas["projectadmin"]
    assert AuditEvent.objects.get(action="order.approve").reason == "change 7"


def test_cancel_is_audited_and_final(client_for, offline_account):
    order = _order(offline_account)
    response = client_for("requester").post(
        reverse("orders:order-cancel", args=[order.pk]), {"reason": "typo in name"}
    )

    assert response.status_code == 302
    order.refresh_from_db()
    assert order.state == State.CANCELLED
    assert AuditEvent.objects.get(action="order.cancel").reason == "typo in name"


def test_policy_makes_new_orders_wait_for_approval(client_for, offline_account, project):
    client_for("projectadmin").post(reverse("orders:order-policy"), {"require_approval": "on"})
    assert OrderPolicy.objects.get(project=project).require_approval

    _post_order(client_for("requester"), offline_account, domains="wait.example.com")
    assert Order.objects.get().state == State.AWAITING_APPROVAL


def test_dns_provider_secrets_are_stored_encrypted(client_for, project):
    options = (
        '{"server": "127.0.0.1", "port": 5353, "zone": "example.com.", '
        '"tsig_name": "k", "tsig_secret": "c2VjcmV0c2VjcmV0"}'
    )
    response = client_for("projectadmin").post(
        reverse("orders:dns-provider-create"),
        {"name": "ns1", "kind": "rfc2136", "options": options},
    )

    assert response.status_code == 302
    provider = DnsProvider.objects.get()
    assert "tsig_secret" not in provider.options
    assert "c2VjcmV0c2VjcmV0" not in provider.encrypted_credentials
    assert provider.credentials() == {"tsig_secret": "c2VjcmV0c2VjcmV0"}
    assert AuditEvent.objects.filter(action="dns_provider.create").exists()


def test_bad_provider_options_are_a_form_error(client_for):
    response = client_for("projectadmin").post(
        reverse("orders:dns-provider-create"), {"name": "x", "kind": "rfc2136", "options": "{}"}
    )
    assert response.status_code == 400
    assert not DnsProvider.objects.exists()


def test_http01_is_served_for_live_challenges_only(client, offline_account):
    order = _order(offline_account)
    authz = Authorization.objects.create(order=order, identifier="a", url="https://x/1")
    Challenge.objects.create(
        authorization=authz,
        type="http-01",
        url="https://x/c",
        token="tok1",
        key_authorization="tok1.thumb",
    )
    response = client.get("/.well-known/acme-challenge/tok1")
    assert response.status_code == 200 and response.content == b"tok1.thumb"
    assert response["Content-Type"].startswith("text/plain")

    Order.objects.filter(pk=order.pk).update(state=State.ISSUED)
    assert client.get("/.well-known/acme-challenge/tok1").status_code == 404


def test_the_middleware_answers_for_any_host(rf, offline_account):
    from orders.http01 import AcmeChallengeMiddleware

    order = _order(offline_account)
    authz = Authorization.objects.create(order=order, identifier="a", url="https://x/1")
    Challenge.objects.create(
        authorization=authz, type="http-01", url="https://x/c", token="tok2", key_authorization="k2"
    )
    middleware = AcmeChallengeMiddleware(lambda request: None)
    request = rf.get("/.well-known/acme-challenge/tok2", HTTP_HOST="shop.customer.example")
    assert middleware(request).content == b"k2"


def test_order_list_shows_only_visible_orders(
    client_for, offline_account, django_assert_max_num_queries
):
    for _ in range(5):
        _order(offline_account)
    client = client_for("viewer")
    with django_assert_max_num_queries(12):
        response = client.get(reverse("orders:order-list"))
    assert len(response.context["orders"]) == 5
    assert len(client_for("outsider").get(reverse("orders:order-list")).context["orders"]) == 0


def test_renew_now_starts_a_renewal_order(client_for, inventory_cert, offline_account):
    response = client_for("requester").post(
        reverse("orders:certificate-renew", args=[inventory_cert.pk])
    )
    order = Order.objects.get()
    assert response.status_code == 302 and response.url == order.get_absolute_url()
    assert order.is_renewal and order.certificate == inventory_cert
    assert sorted(order.domains) == sorted(inventory_cert.current_version.dns_names)
    assert AuditEvent.objects.filter(action="certificate.renew").exists()


def test_the_certificate_include_offers_renew_and_revoke_to_who_may(rf, inventory_cert, personas):
    from django.template.loader import render_to_string

    def html_for(persona):
        request = rf.get("/")
        request.user = personas[persona]
        context = {"cert": inventory_cert, "request": request, "csrf_token": "x"}
        return render_to_string("inventory/_orders.html", context)

    admin = html_for("projectadmin")
    assert "Renew now" in admin and 'name="reason_code"' in admin
    requester = html_for("requester")
    assert "Renew now" in requester and "reason_code" not in requester
    assert "Renew now" not in html_for("viewer")


def test_admin_registers_an_acme_account_from_the_web(client_for, pebble):
    from orders.models import AcmeAccount

    form = {
        "name": "pebble",
        "directory_url": pebble.directory_url,
        "email": "ops@example.com",
        "ca_bundle": pebble.ca_bundle_path.read_text(),
    }
    client = client_for("projectadmin")
    refused = client.post(reverse("orders:account-create"), form)
    assert refused.status_code == 400  # the terms of service must be agreed explicitly

    response = client.post(reverse("orders:account-create"), {**form, "agree_tos": "on"})

    assert response.status_code == 302
    account = AcmeAccount.objects.get()
    assert account.account_uri.startswith(pebble.directory_url.rsplit("/", 1)[0])
    assert AuditEvent.objects.get(action="issuer.create").actor_name == "projectadmin"
    page = client.get(reverse("orders:issuer-list")).content.decode()
    assert pebble.directory_url in page


def test_first_in_middleware_http01_answers_hosts_django_would_refuse(
    client, settings, offline_account
):
    settings.MIDDLEWARE = ["orders.http01.AcmeChallengeMiddleware", *settings.MIDDLEWARE]
    settings.SECURE_SSL_REDIRECT = True  # the CA fetches over plain HTTP: no redirect first
    order = _order(offline_account)
    authz = Authorization.objects.create(order=order, identifier="a", url="https://x/1")
    Challenge.objects.create(
        authorization=authz, type="http-01", url="https://x/c", token="tok3", key_authorization="k3"
    )

    response = client.get("/.well-known/acme-challenge/tok3", HTTP_HOST="shop.customer.example")

    assert response.status_code == 200 and response.content == b"k3"
