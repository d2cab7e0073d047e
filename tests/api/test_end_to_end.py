"""End to end: a pipeline token from create_token imports a certificate and orders one from
Pebble over the API; a server then fetches the issued bundle with real curl, ETag and all."""

import base64
import json
import shutil
import subprocess
from io import StringIO

import pytest
import requests
from cryptography.hazmat.primitives.serialization import Encoding
from django.core.management import call_command

from api.models import FetchToken
from certconsole.audit.models import AuditEvent
from orders.models import Order
from tests.orders.fixtures import drive

pytestmark = pytest.mark.django_db(transaction=True)


def _curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-sS", *args], capture_output=True, text=True, timeout=30)


def test_token_import_order_and_curl_fetch(
    live_server, personas, project, account, console_http, rq_redis, issued_chain, tmp_path
):
    assert shutil.which("curl"), "apt-get install curl (listed in apt-packages.txt)"
    out = StringIO()
    call_command(
        "create_token",
        "--user",
        "projectadmin",
        "--project",
        "alpha",
        "--role",
        "projectadmin",
        "--read-write",
        "--expires",
        "1",
        "--json",
        stdout=out,
    )
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {json.loads(out.getvalue())['token']}"
    base = f"{live_server.url}/api/v1"

    pem = issued_chain.leaf.pem + issued_chain.intermediate.pem + issued_chain.leaf.key_pem
    body = {"content": base64.b64encode(pem).decode(), "filename": "legacy.pem"}
    imported = api.post(f"{base}/certificates/import/", json=body, timeout=30)
    assert imported.status_code == 201, imported.text

    body = {"account": account.pk, "domains": ["e2e.example.com"], "certificate_name": "e2e"}
    created = api.post(f"{base}/orders/", json=body, timeout=30)
    assert created.status_code == 201, created.text
    order = drive(Order.objects.get(pk=created.json()["id"]))
    assert order.state == Order.State.ISSUED, order.last_error
    timeline = api.get(f"{base}/orders/{order.pk}/", timeout=30).json()
    assert timeline["state"] == "issued" and timeline["events"]
    certificate = order.issued_version.certificate

    _, secret = FetchToken.issue(personas["projectadmin"], certificate, name="web-01")
    url = f"{base}/fetch/"
    auth = f"Authorization: Bearer {secret}"
    bundle, etag_file = tmp_path / "bundle.pem", tmp_path / "etag"
    first = _curl(
        "-f",
        "-H",
        auth,
        "--etag-save",
        str(etag_file),
        "-o",
        str(bundle),
        "-w",
        "%{http_code}",
        url,
    )
    assert first.stdout == "200", first.stderr
    text = bundle.read_text()
    assert text.count("BEGIN CERTIFICATE") >= 2 and "PRIVATE KEY" in text
    leaf = order.issued_version.to_x509().public_bytes(Encoding.PEM).decode()
    assert text.startswith(leaf)
    second = _curl(
        "-H",
        auth,
        "-H",
        f"If-None-Match: {etag_file.read_text().strip()}",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        url,
    )
    assert second.stdout == "304"
    other = _curl(
        "-H", "Authorization: Bearer ccf_other", "-o", "/dev/null", "-w", "%{http_code}", url
    )
    assert other.stdout == "401"


def test_a_project_admin_token_registers_an_acme_account(pebble, token_client):
    body = {
        "name": "pebble-api",
        "directory_url": pebble.directory_url,
        "ca_bundle": pebble.ca_bundle_path.read_text(),
        "email": "ops@example.com",
        "agree_tos": True,
    }
    assert (
        token_client("requester", read_only=False)
        .post("/api/v1/acme-accounts/", body, format="json")
        .status_code
        == 403
    )
    response = token_client("projectadmin", read_only=False).post(
        "/api/v1/acme-accounts/", body, format="json"
    )
    assert response.status_code == 201, response.json()
    assert response.json()["account_uri"].startswith("https://")
    assert AuditEvent.objects.filter(action="issuer.create", source="api").exists()
