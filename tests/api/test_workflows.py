"""Orders, deployments, issuers, targets and audit by API: the same procedures, rights and audit."""

import json

import pytest

from certconsole import keyring
from certconsole.audit.models import AuditEvent
from deployments import rollout
from deployments.models import Target
from orders.models import AcmeAccount, Order, OrderPolicy


@pytest.fixture
def acme_account(project):
    """An account row (never registered: these tests stop before anything talks to a CA)."""
    return AcmeAccount.objects.create(
        project=project,
        name="test-ca",
        directory_url="https://127.0.0.1:9/dir",
        encrypted_account_key=keyring.encrypt(b"unused"),
    )


@pytest.fixture
def approval_required(project):
    OrderPolicy.objects.create(project=project, require_approval=True)


def test_an_order_is_created_approved_and_read_with_its_timeline(
    token_client, acme_account, approval_required, rq_redis
):
    requester = token_client("requester", read_only=False)
    body = {"account": acme_account.pk, "domains": ["shop.example.test"]}
    response = requester.post("/api/v1/orders/", body, format="json")
    assert response.status_code == 201, response.json()
    order = Order.objects.get()
    assert response.json()["state"] == "awaiting_approval"
    assert (
        requester.post(
            f"/api/v1/orders/{order.pk}/approve/", {"reason": "ok"}, format="json"
        ).status_code
        == 403
    )
    admin = token_client("projectadmin", read_only=False)
    response = admin.post(f"/api/v1/orders/{order.pk}/approve/", {}, format="json")
    assert response.json()["error"]["fields"] == {"reason": ["This field is required."]}
    response = admin.post(f"/api/v1/orders/{order.pk}/approve/", {"reason": "ok"}, format="json")
    assert response.status_code == 200 and response.json()["state"] == "pending_validation"
    timeline = requester.get(f"/api/v1/orders/{order.pk}/").json()["events"]
    assert len(timeline) >= 2
    event = AuditEvent.objects.filter(action="order.approve").get()
    assert (event.source, event.actor_name, event.detail.get("reason", event.reason)) == (
        "api",
        "projectadmin",
        "ok",
    )
    response = requester.post(f"/api/v1/orders/{order.pk}/cancel/", {}, format="json")
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    again = requester.post(f"/api/v1/orders/{order.pk}/cancel/", {}, format="json")
    assert again.status_code == 400
    assert again.json()["error"]["message"] == "This order has already ended."


def test_order_refusals(token_client, acme_account, other_project, inventory_cert):
    viewer = token_client("viewer", read_only=False)
    body = {"account": acme_account.pk, "domains": ["a.example.test"]}
    assert viewer.post("/api/v1/orders/", body, format="json").status_code == 403
    scoped = token_client("requester", read_only=False, certificates=[inventory_cert])
    assert scoped.post("/api/v1/orders/", body, format="json").status_code == 403
    requester = token_client("requester", read_only=False)
    response = requester.post("/api/v1/orders/", {"account": 999, "domains": []}, format="json")
    assert set(response.json()["error"]["fields"]) == {"domains"}
    response = requester.post("/api/v1/orders/?project=beta", body, format="json")
    assert response.status_code == 404


def test_issuers_targets_bindings_and_checks_are_readable(
    token_client, acme_account, personas, project, inventory_cert
):
    target = rollout.create_target(None, project, "manual-1", "manual", {})
    rollout.create_binding(None, inventory_cert, target, ["www.example.test"], "127.0.0.1", 443)
    client = token_client("viewer")
    assert client.get("/api/v1/acme-accounts/").json()["results"][0]["name"] == "test-ca"
    assert client.get("/api/v1/certificate-authorities/").json()["results"] == []
    assert client.get("/api/v1/targets/").json()["results"][0]["name"] == "manual-1"
    bindings = client.get("/api/v1/bindings/").json()["results"]
    assert bindings[0]["certificate"] == inventory_cert.pk
    assert client.get("/api/v1/endpoint-checks/").status_code == 200
    assert client.get("/api/v1/projects/").json()["results"][0]["slug"] == "alpha"


def test_deployments_start_and_roll_back_through_rollout(
    token_client, project, inventory_cert, rq_redis
):
    body = {"certificate": inventory_cert.pk, "reason": "ship"}
    assert (
        token_client("viewer", read_only=False)
        .post("/api/v1/deployments/", body, format="json")
        .status_code
        == 403
    )
    deployer = token_client("deployer", read_only=False)
    response = deployer.post("/api/v1/deployments/", body, format="json")
    assert response.status_code == 400  # no bindings yet: rollout says so
    target = rollout.create_target(None, project, "manual-1", "manual", {})
    rollout.create_binding(None, inventory_cert, target, ["www.example.test"], "127.0.0.1", 443)
    response = deployer.post("/api/v1/deployments/", body, format="json")
    assert response.status_code == 201, response.json()
    detail = deployer.get(f"/api/v1/deployments/{response.json()['id']}/").json()
    assert detail["steps"][0]["binding"]
    response = deployer.post(
        "/api/v1/deployments/rollback/", {"certificate": inventory_cert.pk}, format="json"
    )
    assert set(response.json()["error"]["fields"]) == {"reason"}
    event = AuditEvent.objects.filter(action__startswith="deployment.").latest("id")
    assert event.source == "api"


def test_the_audit_log_is_for_auditors(token_client, inventory_cert):
    assert token_client("viewer").get("/api/v1/audit-events/").status_code == 403
    auditor = token_client("auditor")
    events = auditor.get("/api/v1/audit-events/").json()["results"]
    assert any(e["action"] == "certificate.import" for e in events)
    response = auditor.get("/api/v1/audit-events/export/")
    assert response.status_code == 200, response.content
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert json.loads(lines[0])["action"]
    assert AuditEvent.objects.filter(action="audit.export", source="api").exists()


def test_targets_and_bindings_are_created_through_the_same_procedures(
    token_client, project, inventory_cert
):
    target_body = {
        "name": "hook",
        "kind": "webhook",
        "options": {"url": "http://127.0.0.1:9/hook"},
        "credentials": {"secret": "s3cret"},
    }
    assert (
        token_client("deployer").post("/api/v1/targets/", target_body, format="json").status_code
        == 403  # read-only by default
    )
    deployer = token_client("deployer", read_only=False)
    bad = deployer.post("/api/v1/targets/", {**target_body, "options": {}}, format="json")
    assert bad.status_code == 400
    assert "url" in bad.json()["error"]["message"]
    created = deployer.post("/api/v1/targets/", target_body, format="json")
    assert created.status_code == 201, created.json()
    assert "s3cret" not in created.content.decode()
    target = Target.objects.get(name="hook")
    assert target.credentials() == {"secret": "s3cret"}
    binding = deployer.post(
        "/api/v1/bindings/",
        {
            "certificate": inventory_cert.pk,
            "target": target.pk,
            "sni_names": ["www.example.test"],
            "probe": "127.0.0.1:8443",
            "wave": 2,
        },
        format="json",
    )
    assert binding.status_code == 201, binding.json()
    assert (binding.json()["probe_port"], binding.json()["wave"]) == (8443, 2)
    events = AuditEvent.objects.filter(action__in=["target.create", "binding.create"])
    assert {e.source for e in events} == {"api"} and events.count() == 2
