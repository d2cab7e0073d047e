"""The API tokens page and the create_token command."""

import json

from django.core.management import call_command

from api.models import ApiToken, FetchToken
from certconsole.audit.models import AuditEvent


def test_a_user_creates_a_token_sees_it_once_and_revokes_it(client_for, personas):
    client = client_for("requester")
    assert client.get("/accounts/api-tokens/").status_code == 200
    response = client.post(
        "/accounts/api-tokens/new/",
        {
            "name": "ci",
            "project": "alpha",
            "role": "requester",
            "expires_days": 30,
            "rate_limit": "600/min",
        },
    )
    assert response.status_code == 201
    token = ApiToken.objects.get()
    secret = response.context["secret"]
    assert secret.startswith("cct_") and token.digest != secret
    assert secret.encode() in response.content
    assert secret.encode() not in client.get("/accounts/api-tokens/").content
    assert token.read_only is False  # an unchecked box posts nothing
    response = client.post(f"/accounts/api-tokens/{token.pk}/revoke/", {"reason": "done"})
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert AuditEvent.objects.filter(action="api_token.revoke").exists()


def test_the_page_refuses_a_role_above_the_users(client_for, personas):
    client = client_for("viewer")
    response = client.post(
        "/accounts/api-tokens/new/",
        {
            "name": "ci",
            "project": "alpha",
            "role": "projectadmin",
            "expires_days": 30,
            "read_only": "on",
            "rate_limit": "600/min",
        },
    )
    assert response.status_code == 400
    assert not ApiToken.objects.exists()


def test_others_cannot_revoke_a_users_token(client_for, personas, project):
    token, _ = ApiToken.issue(None, personas["viewer"], project, name="x")
    response = client_for("requester").post(f"/accounts/api-tokens/{token.pk}/revoke/")
    assert response.status_code == 404


def test_a_custodian_creates_a_fetch_token_on_the_page(client_for, inventory_cert):
    client = client_for("keycustodian")
    body = {
        "name": "web-01",
        "project": "alpha",
        "certificate": inventory_cert.name,
        "format": "pem",
    }
    response = client.post("/accounts/api-tokens/fetch/new/", body)
    assert response.status_code == 201
    assert response.context["fetch_secret"].startswith("ccf_")
    assert client_for("deployer").post("/accounts/api-tokens/fetch/new/", body).status_code == 403
    token = FetchToken.objects.get()
    assert (
        client_for("keycustodian")
        .post(f"/accounts/api-tokens/fetch/{token.pk}/revoke/")
        .status_code
        == 302
    )


def test_create_token_prints_the_token_once(personas, inventory_cert, capsys, api_client):
    call_command(
        "create_token",
        "--user",
        "requester",
        "--project",
        "alpha",
        "--role",
        "requester",
        "--certificate",
        inventory_cert.name,
        "--expires",
        "7",
        "--json",
    )
    out = json.loads(capsys.readouterr().out)
    assert out["role"] == "requester" and out["read_only"] is True
    assert out["certificates"] == [inventory_cert.name]
    response = api_client(out["token"]).get("/api/v1/certificates/")
    assert [r["id"] for r in response.json()["results"]] == [inventory_cert.pk]
    event = AuditEvent.objects.filter(action="api_token.create").get()
    assert event.source == "cli"
    call_command("create_token", "--user", "viewer", "--project", "alpha")
    assert capsys.readouterr().out.strip().startswith("cct_")


def test_the_docs_page_lists_operations_from_the_schema(client_for):
    response = client_for("viewer").get("/api/v1/docs/")
    assert response.status_code == 200
    assert b"/api/v1/certificates/{id}/export-key/" in response.content
    assert b"<script" not in response.content.split(b"</head>")[1]
    schema = client_for("anonymous").get("/api/v1/schema/?format=json").json()
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/certificates/import/" in schema["paths"]
