"""Certificates by API: the web list's filters and search, cursor pages, downloads, import."""

import base64

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from certconsole.audit.models import AuditEvent
from inventory.models import Certificate
from tests.pki.factory import make_leaf


@pytest.fixture
def several(import_pem, issued_chain):
    made = []
    for i, days in enumerate([10, 40, 200]):
        leaf = make_leaf(issued_chain.intermediate, name=f"host{i}.shop.example.test", days=days)
        made.append(import_pem(leaf.pem + issued_chain.intermediate.pem))
    return made


def test_the_list_filters_and_searches_like_the_web_list(token_client, several):
    client = token_client("viewer")
    rows = client.get("/api/v1/certificates/", {"status": "expiring"}).json()["results"]
    assert [r["name"] for r in rows] == [several[0].name]
    rows = client.get("/api/v1/certificates/", {"q": "host2.shop.example.test"}).json()["results"]
    assert [r["id"] for r in rows] == [several[2].pk]
    assert [r["id"] for r in client.get("/api/v1/certificates/").json()["results"]] == [
        c.pk for c in several
    ]  # soonest expiry first


def test_a_bad_filter_is_a_400_with_the_field(token_client, several):
    response = token_client("viewer").get("/api/v1/certificates/", {"status": "nonsense"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert list(error["fields"]) == ["status"]


def test_lists_page_with_cursors(token_client, several):
    client = token_client("viewer")
    first = client.get("/api/v1/certificates/", {"page_size": 2}).json()
    assert len(first["results"]) == 2 and first["next"]
    second = client.get(first["next"]).json()
    assert [r["id"] for r in second["results"]] == [several[2].pk]
    assert second["next"] is None


def test_detail_versions_and_public_downloads(token_client, inventory_cert):
    client = token_client("viewer")
    detail = client.get(f"/api/v1/certificates/{inventory_cert.pk}/").json()
    assert detail["version"]["sha256"] == inventory_cert.current_version.sha256
    versions = client.get(f"/api/v1/certificates/{inventory_cert.pk}/versions/").json()
    assert [v["sha256"] for v in versions] == [inventory_cert.current_version.sha256]
    response = client.get(f"/api/v1/certificates/{inventory_cert.pk}/download/fullchain/")
    assert response.status_code == 200
    assert response.content.count(b"BEGIN CERTIFICATE") == 2
    assert client.get(f"/api/v1/certificates/{inventory_cert.pk}/download/nope/").status_code == 404


def test_an_auditor_token_cannot_read_certificates(token_client, inventory_cert):
    client = token_client("auditor")
    assert client.get(f"/api/v1/certificates/{inventory_cert.pk}/").status_code == 403
    assert client.get("/api/v1/certificates/").json()["results"] == []


def test_import_as_base64_json_goes_through_importing_and_is_audited(token_client, issued_chain):
    client = token_client("requester", read_only=False)
    content = base64.b64encode(issued_chain.leaf.pem + issued_chain.intermediate.pem).decode()
    body = {"content": content, "filename": "site.pem", "labels": {"env": "prod"}}
    response = client.post("/api/v1/certificates/import/", body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "imported"
    certificate = Certificate.objects.get()
    assert certificate.label_env == "prod"
    event = AuditEvent.objects.filter(action="certificate.import").latest("id")
    assert (event.source, event.actor_name) == ("api", "requester")
    again = client.post("/api/v1/certificates/import/", body, format="json")
    assert again.status_code == 200 and again.json()["status"] == "duplicate"


def test_import_as_multipart_and_refusals(token_client, issued_chain):
    upload = SimpleUploadedFile("site.pem", issued_chain.leaf.pem)
    client = token_client("requester", read_only=False)
    response = client.post("/api/v1/certificates/import/", {"file": upload}, format="multipart")
    assert response.status_code == 201
    # A key needs the upload_key right, which a Requester does not have.
    key_body = {"content": base64.b64encode(issued_chain.leaf.key_pem).decode()}
    response = client.post("/api/v1/certificates/import/", key_body, format="json")
    assert response.status_code == 400
    assert "file" in response.json()["error"]["fields"]
    response = client.post("/api/v1/certificates/import/", {"content": "%%%"}, format="json")
    assert response.json()["error"]["fields"] == {"content": ["Not valid base64."]}
    response = client.post("/api/v1/certificates/import/", {}, format="json")
    assert response.status_code == 400
    viewer = token_client("viewer", read_only=False)
    assert viewer.post("/api/v1/certificates/import/", key_body, format="json").status_code == 403


def test_odd_input_gets_clean_errors(token_client, inventory_cert):
    client = token_client("requester", read_only=False)
    assert client.get("/api/v1/certificates/abc/").status_code == 404
    response = client.post("/api/v1/certificates/import/", [1, 2], format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
    response = client.delete(f"/api/v1/certificates/{inventory_cert.pk}/")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
