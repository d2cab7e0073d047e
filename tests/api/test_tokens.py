"""A token never exceeds its role, its project, its certificates, its life or its read-only flag."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from api.models import ApiToken
from certconsole.access.models import Membership
from certconsole.audit.models import AuditEvent
from tests.pki.factory import make_leaf


@pytest.fixture
def second_cert(import_pem, issued_chain):
    leaf = make_leaf(issued_chain.intermediate, name="second.example.test")
    return import_pem(leaf.pem + issued_chain.intermediate.pem + leaf.key_pem)


@pytest.fixture
def beta_cert(import_pem, issued_chain, other_project):
    leaf = make_leaf(issued_chain.intermediate, name="beta.example.test")
    return import_pem(leaf.pem + issued_chain.intermediate.pem, target_project=other_project)


def _ids(response):
    return {row["id"] for row in response.json()["results"]}


def test_a_token_sees_only_its_project(token_client, inventory_cert, beta_cert):
    client = token_client("superuser", role="viewer")
    assert _ids(client.get("/api/v1/certificates/")) == {inventory_cert.pk}
    response = client.get(f"/api/v1/certificates/{beta_cert.pk}/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_a_role_above_the_users_own_is_refused(personas, project):
    with pytest.raises(ValidationError):
        ApiToken.issue(None, personas["viewer"], project, name="x", role="projectadmin")
    with pytest.raises(ValidationError):
        ApiToken.issue(None, personas["outsider"], project, name="x", role="viewer")


def test_a_superusers_token_has_only_its_role(token_client, inventory_cert):
    client = token_client("superuser", role="viewer", read_only=False)
    response = client.post(f"/api/v1/certificates/{inventory_cert.pk}/renew/", {}, format="json")
    assert response.status_code == 403
    response = client.post(
        f"/api/v1/certificates/{inventory_cert.pk}/export-key/",
        {"format": "key", "reason": "test"},
        format="json",
    )
    assert response.status_code == 403


def test_a_certificate_scope_hides_the_others(token_client, inventory_cert, second_cert, rq_redis):
    client = token_client("projectadmin", certificates=[inventory_cert])
    assert _ids(client.get("/api/v1/certificates/")) == {inventory_cert.pk}
    assert client.get(f"/api/v1/certificates/{second_cert.pk}/").status_code == 404
    assert client.get(f"/api/v1/certificates/{second_cert.pk}/download/cert/").status_code == 404
    assert client.get(f"/api/v1/certificates/{inventory_cert.pk}/download/cert/").status_code == 200
    events = client.get("/api/v1/audit-events/").json()["results"]
    assert events and {e["target_id"] for e in events} == {str(inventory_cert.pk)}


def test_expired_and_revoked_tokens_are_refused(make_token, api_client, inventory_cert):
    token, secret = make_token("viewer")
    client = api_client(secret)
    assert client.get("/api/v1/certificates/").status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.get("/api/v1/certificates/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"].startswith("Bearer")
    token2, secret2 = make_token("viewer")
    token2.revoke(None, "test")
    assert api_client(secret2).get("/api/v1/certificates/").status_code == 401
    assert api_client("cct_nonsense").get("/api/v1/projects/").status_code == 401
    assert api_client().get("/api/v1/projects/").status_code == 401


def test_read_only_tokens_are_refused_every_write(token_client, inventory_cert):
    client = token_client("projectadmin")  # read-only by default
    response = client.post(f"/api/v1/certificates/{inventory_cert.pk}/renew/", {}, format="json")
    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "permission_denied",
        "message": "This token is read-only.",
        "fields": {},
    }
    assert client.get(f"/api/v1/certificates/{inventory_cert.pk}/").status_code == 200


def test_a_token_loses_what_its_user_loses(
    make_token, api_client, personas, project, inventory_cert
):
    _, secret = make_token("requester")
    client = api_client(secret)
    assert client.get(f"/api/v1/certificates/{inventory_cert.pk}/").status_code == 200
    Membership.objects.filter(user=personas["requester"], project=project).delete()
    assert client.get(f"/api/v1/certificates/{inventory_cert.pk}/").status_code == 403
    assert client.get("/api/v1/certificates/").json()["results"] == []


def test_key_export_needs_a_custodian_write_token_and_a_reason(token_client, inventory_cert):
    url = f"/api/v1/certificates/{inventory_cert.pk}/export-key/"
    body = {"format": "key", "reason": "move to new load balancer"}
    assert token_client("viewer", read_only=False).post(url, body, format="json").status_code == 403
    assert token_client("keycustodian").post(url, body, format="json").status_code == 403
    client = token_client("keycustodian", read_only=False)
    response = client.post(url, {"format": "key"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"reason": ["This field is required."]}
    response = client.post(url, body, format="json")
    assert response.status_code == 200
    assert b"PRIVATE KEY" in response.content
    event = AuditEvent.objects.filter(action="certificate.export_key").latest("id")
    assert (event.source, event.actor_name, event.reason) == (
        "api",
        "keycustodian",
        "move to new load balancer",
    )


def test_a_session_cannot_export_keys_without_reauthentication(client_for, inventory_cert):
    client = client_for("keycustodian")
    url = f"/api/v1/certificates/{inventory_cert.pk}/export-key/"
    response = client.post(url, {"format": "key", "reason": "x"}, content_type="application/json")
    assert response.status_code == 403


def test_the_rate_limit_answers_429_with_retry_after(make_token, api_client):
    token, secret = make_token("viewer")
    ApiToken.objects.filter(pk=token.pk).update(rate_limit="2/min")
    client = api_client(secret)
    assert client.get("/api/v1/projects/").status_code == 200
    assert client.get("/api/v1/projects/").status_code == 200
    response = client.get("/api/v1/projects/")
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert response.json()["error"]["code"] == "rate_limited"


def test_last_use_is_remembered(make_token, api_client):
    token, secret = make_token("viewer")
    api_client(secret).get("/api/v1/projects/")
    token.refresh_from_db()
    assert token.last_used_at is not None
