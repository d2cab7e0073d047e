"""Bundle fetch: one token, one certificate's current bundle, ETag, every delivery audited."""

import io
import zipfile

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client

from api.models import FetchToken
from certconsole.audit.models import AuditEvent
from tests.pki.factory import make_leaf


def _fetch(secret, **headers):
    return Client().get("/api/v1/fetch/", HTTP_AUTHORIZATION=f"Bearer {secret}", **headers)


def test_a_server_fetches_its_bundle_and_an_unchanged_one_costs_a_304(
    personas, inventory_cert, issued_chain
):
    token, secret = FetchToken.issue(personas["keycustodian"], inventory_cert, name="web-01")
    response = _fetch(secret)
    assert response.status_code == 200
    assert response.content.startswith(issued_chain.leaf.pem)
    assert b"PRIVATE KEY" in response.content
    tag = response["ETag"]
    event = AuditEvent.objects.filter(action="certificate.fetch").get()
    assert (event.source, event.actor_name) == ("api", f"fetch:{token.prefix}")
    again = _fetch(secret, HTTP_IF_NONE_MATCH=tag)
    assert again.status_code == 304 and again.content == b""
    # Every fetch is audited; the 304 says it sent nothing.
    fetches = AuditEvent.objects.filter(action="certificate.fetch").order_by("id")
    assert [e.detail["not_modified"] for e in fetches] == [False, True]
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_a_new_version_changes_the_etag(personas, inventory_cert, issued_chain, import_pem):
    _, secret = FetchToken.issue(personas["keycustodian"], inventory_cert, name="web-01")
    tag = _fetch(secret)["ETag"]
    leaf = make_leaf(issued_chain.intermediate, name="www.example.test", days=120)
    import_pem(leaf.pem + issued_chain.intermediate.pem + leaf.key_pem, name=inventory_cert.name)
    response = _fetch(secret, HTTP_IF_NONE_MATCH=tag)
    assert response.status_code == 200
    assert response.content.startswith(leaf.pem)


def test_server_formats(personas, inventory_cert):
    _, secret = FetchToken.issue(personas["projectadmin"], inventory_cert, name="lb", fmt="nginx")
    response = _fetch(secret)
    assert response["Content-Type"] == "application/zip"
    assert "privkey.pem" in zipfile.ZipFile(io.BytesIO(response.content)).namelist()


def test_fetch_tokens_need_the_key_export_right_and_do_nothing_else(
    personas, inventory_cert, api_client
):
    with pytest.raises(PermissionDenied):
        FetchToken.issue(personas["deployer"], inventory_cert, name="web")
    token, secret = FetchToken.issue(personas["keycustodian"], inventory_cert, name="web")
    assert api_client(secret).get("/api/v1/certificates/").status_code == 401
    assert _fetch("ccf_wrong").status_code == 401
    token.revoke(personas["keycustodian"], "server retired")
    response = _fetch(secret)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
