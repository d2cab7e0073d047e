"""People set how each certificate renews; changes are audited."""

from django.urls import reverse

from certconsole.audit.models import AuditEvent
from orders.models import RenewalPolicy


def url(cert):
    return reverse("orders:renewal-policy", args=[cert.pk])


def test_a_requester_sets_days_before_expiry_and_it_is_audited(client_for, inventory_cert):
    response = client_for("requester").post(
        url(inventory_cert),
        {"auto_renew": "on", "mode": "days_before", "days": "21", "reuse_key": "on"},
    )
    assert response.status_code == 302
    policy = RenewalPolicy.objects.get(certificate=inventory_cert)
    assert (policy.mode, policy.days, policy.reuse_key, policy.use_ari) == (
        "days_before",
        21,
        True,
        False,
    )
    event = AuditEvent.objects.get(action="renewal_policy.change")
    assert event.actor_name == "requester"
    assert event.detail["after"]["days"] == 21


def test_bad_days_keep_the_input_and_change_nothing(client_for, inventory_cert):
    response = client_for("requester").post(
        url(inventory_cert), {"auto_renew": "on", "mode": "days_before", "days": "0"}
    )
    assert response.status_code == 400
    assert "Choose between 1 and 3650 days" in response.content.decode()
    assert not RenewalPolicy.objects.filter(certificate=inventory_cert).exists()


def test_the_certificate_page_links_to_the_settings_for_editors_only(client_for, inventory_cert):
    link = url(inventory_cert)
    assert link in client_for("requester").get(inventory_cert.get_absolute_url()).content.decode()
    assert link not in client_for("viewer").get(inventory_cert.get_absolute_url()).content.decode()
    assert client_for("viewer").post(link, {"mode": "two_thirds"}).status_code == 403
