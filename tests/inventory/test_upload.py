"""Uploading in the browser: preview exactly what would happen, then confirm with a staged token."""

import base64
import json
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils.html import escape

from certconsole import keyring
from certconsole.audit.models import AuditEvent
from inventory import staging
from inventory.importing import KEY_PERMISSION_MESSAGE
from inventory.models import Certificate, CertificateVersion, PrivateKey, StagedUpload
from inventory.pki.formats import pkcs12
from inventory.pki.keys import private_key_pem
from tests.pki.factory import make_key, make_leaf

UPLOAD = reverse("inventory:upload")
CONFIRM = reverse("inventory:upload-confirm")
HTMX = {"HTTP_HX_REQUEST": "true"}


def pem_file(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/x-pem-file")


def preview(client, project, *files, **fields):
    return client.post(UPLOAD, {"project": project.pk, "files": list(files), **fields})


def full_bundle(c) -> bytes:
    return c.leaf.pem + c.intermediate.pem + c.root.pem + c.leaf.key_pem


def test_form_offers_only_projects_where_the_user_may_upload(client_for, project, other_project):
    response = client_for("keycustodian").get(UPLOAD)
    assert response.status_code == 200
    assert list(response.context["form"].fields["project"].queryset) == [project]
    assert (
        client_for("outsider").get(UPLOAD).context["form"].fields["project"].queryset.get()
        == other_project
    )
    assert client_for("viewer").get(UPLOAD).status_code == 403


def test_preview_shows_what_would_be_imported_and_writes_nothing(client_for, project, issued_chain):
    client = client_for("keycustodian")
    response = preview(client, project, pem_file("site.pem", full_bundle(issued_chain)))
    assert response.status_code == 200
    page = response.content.decode()
    assert "<html" in page  # without htmx: the whole page, preview included
    for text in [
        "CN=www.example.test",
        "CN=Test Intermediate CA",
        "EC-P256",
        "New</span>",
        "Chain complete",
        "Private key included",
        "Confirm and import",
    ]:
        assert text in page, text
    assert Certificate.objects.count() == 0
    staged = StagedUpload.objects.get()
    assert staged.user.username == "keycustodian"
    # Encrypted at rest: the payload is a keyring token, not the (base64) file.
    payload = json.loads(keyring.decrypt(staged.payload))
    assert base64.b64decode(payload["files"][0]["data"]) == full_bundle(issued_chain)
    assert payload["files"][0]["data"][:60] not in staged.payload
    assert response.context["token"] == str(staged.token)


def test_htmx_preview_answers_with_the_fragment_only(client_for, project, issued_chain):
    client = client_for("keycustodian")
    response = client.post(
        UPLOAD, {"project": project.pk, "files": [pem_file("a.pem", issued_chain.leaf.pem)]}, **HTMX
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in page
    assert page.lstrip().startswith('<section id="preview"')
    assert "Chain incomplete" in page and "Missing issuer: CN=Test Intermediate CA" in page


def test_confirm_imports_and_links_each_certificate(client_for, project, issued_chain):
    client = client_for("keycustodian")
    token = preview(client, project, pem_file("site.pem", full_bundle(issued_chain))).context[
        "token"
    ]
    response = client.post(CONFIRM, {"token": token})
    assert response.status_code == 200
    certificate = Certificate.objects.get()
    assert certificate.has_private_key and certificate.current_version.chain_complete
    page = response.content.decode()
    assert "imported</span>" in page
    assert f'href="{certificate.get_absolute_url()}"' in page
    assert not StagedUpload.objects.exists()
    event = AuditEvent.objects.get(action="certificate.import")
    assert (event.actor.username, event.source) == ("keycustodian", "web")


def test_a_token_imports_once(client_for, project, issued_chain):
    client = client_for("requester")
    token = preview(client, project, pem_file("a.pem", issued_chain.leaf.pem)).context["token"]
    assert client.post(CONFIRM, {"token": token}).status_code == 200
    again = client.post(CONFIRM, {"token": token})
    assert again.status_code == 400
    assert "This upload expired or was already imported" in again.content.decode()
    assert CertificateVersion.objects.count() == 1


def test_only_the_uploader_may_confirm(client_for, project, issued_chain):
    token = preview(
        client_for("requester"), project, pem_file("a.pem", issued_chain.leaf.pem)
    ).context["token"]
    assert client_for("projectadmin").post(CONFIRM, {"token": token}).status_code == 400
    assert Certificate.objects.count() == 0
    assert StagedUpload.objects.count() == 1  # still there for its owner


def test_a_staged_upload_expires_after_thirty_minutes(client_for, project, issued_chain):
    client = client_for("requester")
    token = preview(client, project, pem_file("a.pem", issued_chain.leaf.pem)).context["token"]
    StagedUpload.objects.update(
        created_at=StagedUpload.objects.get().created_at - timedelta(minutes=31)
    )
    assert client.post(CONFIRM, {"token": token}).status_code == 400
    assert staging.purge_expired() == 1


@pytest.mark.parametrize("token", ["", "not-a-uuid", "5b0a6a1c-58a1-4d33-9a55-2e1f61c3c6a0"])
def test_unknown_tokens_get_the_expired_page(client_for, token):
    response = client_for("requester").post(CONFIRM, {"token": token})
    assert response.status_code == 400


def test_confirm_rejects_get(client_for):
    assert client_for("requester").get(CONFIRM).status_code == 405


def test_a_key_needs_the_key_custodian_and_the_public_file_still_imports(
    client_for, project, issued_chain
):
    client = client_for("requester")
    c = issued_chain
    response = preview(
        client,
        project,
        pem_file("key.pem", c.leaf.pem + c.leaf.key_pem),
        pem_file("cert.pem", c.leaf.pem),
    )
    assert KEY_PERMISSION_MESSAGE in response.content.decode()
    result = client.post(CONFIRM, {"token": response.context["token"]})
    rows = [(r["result"].file, r["result"].status) for r in result.context["results"]]
    assert rows == [("key.pem", "rejected"), ("cert.pem", "imported")]
    assert KEY_PERMISSION_MESSAGE in result.content.decode()
    assert PrivateKey.objects.count() == 0
    assert AuditEvent.objects.filter(action="access.denied").count() == 1


def test_each_bad_file_shows_its_own_message(client_for, project, issued_chain):
    c = issued_chain
    pfx = pkcs12(c.leaf.key, c.leaf.cert, [], b"right")
    encrypted_key = private_key_pem(make_key(), b"secret")
    files = [
        pem_file("notes.txt", b"hello there"),
        pem_file("cut.pem", c.leaf.pem[:300]),
        pem_file("site.pfx", pfx),
        pem_file("enc.key", encrypted_key),
        pem_file("empty.pem", b""),
        pem_file("good.pem", c.leaf.pem),
    ]
    response = preview(client_for("keycustodian"), project, *files, password="wrong")
    page = response.content.decode()
    assert response.status_code == 200
    errors = [plan.error for plan in response.context["plans"]]
    assert "Not a certificate" in errors[0]
    assert "truncated or corrupted" in errors[1]
    assert errors[2] == "Wrong password for the PKCS#12 file."
    assert errors[3] == "Wrong password for the encrypted private key."
    assert errors[4] == "The file is empty."
    assert errors[5] is None
    for error in errors[:5]:
        assert escape(error) in page


def test_pasted_text_and_the_password_are_used(client_for, project, issued_chain):
    c = issued_chain
    client = client_for("keycustodian")
    pfx = pkcs12(c.leaf.key, c.leaf.cert, [c.intermediate.cert, c.root.cert], b"right")
    pasted = make_leaf(c.intermediate, name="api.example.test")
    data = {
        "project": project.pk,
        "files": [pem_file("site.pfx", pfx)],
        "password": "right",
        "text": pasted.pem.decode(),
    }
    response = client.post(UPLOAD, data)
    plans = response.context["plans"]
    assert [p.file for p in plans] == ["site.pfx", "pasted text"]
    assert [p.error for p in plans] == [None, None]
    client.post(CONFIRM, {"token": response.context["token"]})
    site = CertificateVersion.objects.get(sha256=c.leaf.sha256)
    assert site.private_key is not None and site.chain_complete
    api = CertificateVersion.objects.get(sha256=pasted.sha256)
    assert api.private_key is None and api.chain_complete  # completed from the pool


def test_duplicates_and_new_versions_are_announced(client_for, project, issued_chain, import_pem):
    import_pem(issued_chain.leaf.pem)
    renewed = make_leaf(issued_chain.intermediate, days=200)
    response = preview(
        client_for("requester"),
        project,
        pem_file("same.pem", issued_chain.leaf.pem),
        pem_file("renewed.pem", renewed.pem),
    )
    page = response.content.decode()
    assert "Duplicate</span>" in page
    assert "New version of “www.example.test”" in page
    assert response.context["counts"] == {"new": 0, "new_version": 1, "duplicate": 1, "rejected": 0}


def test_confirm_reports_duplicate_and_new_version(
    client, personas, project, issued_chain, import_pem
):
    import_pem(issued_chain.leaf.pem)
    client.force_login(personas["requester"])
    renewed = make_leaf(issued_chain.intermediate, days=200)
    response = preview(
        client,
        project,
        pem_file("same.pem", issued_chain.leaf.pem),
        pem_file("renewed.pem", renewed.pem),
    )
    result = client.post(CONFIRM, {"token": response.context["token"]})
    assert [r["result"].status for r in result.context["results"]] == ["duplicate", "imported"]
    assert result.context["counts"] == {"imported": 1, "duplicate": 1, "rejected": 0}
    certificate = Certificate.objects.get()
    assert certificate.versions.count() == 2
    assert certificate.current_version.sha256 == renewed.sha256


def test_unmatched_key_is_stored_only_when_ticked(client_for, project):
    client = client_for("keycustodian")
    key = private_key_pem(make_key())
    response = preview(
        client, project, pem_file("a.key", key), pem_file("b.key", private_key_pem(make_key()))
    )
    assert response.content.decode().count('name="store_unmatched"') == 2
    result = client.post(CONFIRM, {"token": response.context["token"], "store_unmatched": ["0"]})
    statuses = [r["result"].status for r in result.context["results"]]
    assert statuses == ["imported", "rejected"]
    assert PrivateKey.objects.get().unmatched


def test_name_owner_and_labels_apply_to_the_new_certificate(client_for, project, issued_chain):
    client = client_for("requester")
    response = preview(
        client,
        project,
        pem_file("a.pem", issued_chain.leaf.pem),
        name="shop",
        owner="web@example.test",
        labels="env=prod, team=web",
    )
    client.post(CONFIRM, {"token": response.context["token"]})
    certificate = Certificate.objects.get()
    assert (certificate.name, certificate.label_owner, certificate.label_env) == (
        "shop",
        "web@example.test",
        "prod",
    )
    assert certificate.labels == {"team": "web"}


@pytest.mark.parametrize(
    "fields,message",
    [
        ({}, "Choose at least one file or paste a certificate."),
        ({"labels": "oops"}, "is not a label"),
        ({"files": [pem_file(f"{i}.pem", b"x") for i in range(21)]}, "more than the 20"),
    ],
)
def test_form_errors_are_shown_and_keep_nothing(client_for, project, fields, message):
    client = client_for("requester")
    data = {"project": project.pk, **fields}
    full = client.post(UPLOAD, data)
    assert full.status_code == 400
    assert message in full.content.decode()
    data = {
        "project": project.pk,
        **{
            k: ([pem_file(f.name, b"x") for f in v] if k == "files" else v)
            for k, v in fields.items()
        },
    }
    fragment = client.post(UPLOAD, data, **HTMX)
    assert fragment.status_code == 200  # htmx swaps 2xx answers only
    assert message in fragment.content.decode()
    assert not StagedUpload.objects.exists()


def test_a_project_without_the_right_is_refused(client_for, other_project, issued_chain):
    response = preview(
        client_for("keycustodian"), other_project, pem_file("a.pem", issued_chain.leaf.pem)
    )
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()


def test_oversized_files_are_refused_with_the_limit(client_for, project, issued_chain, settings):
    settings.CERTCONSOLE_IMPORT_MAX_BYTES = 1024 * 1024
    big = issued_chain.leaf.pem + b"\n" * 1024 * 1024
    response = preview(client_for("requester"), project, pem_file("big.pem", big))
    assert response.context["plans"][0].error == "The file is larger than the 1 MB limit."
    assert response.context["token"] is None
    assert "Nothing in these files can be imported." in response.content.decode()


def test_one_failing_file_loses_nothing_of_the_others(
    client_for, project, issued_chain, monkeypatch
):
    from inventory import upload

    client = client_for("requester")
    other = make_leaf(issued_chain.intermediate, name="api.example.test")
    response = preview(
        client, project, pem_file("a.pem", issued_chain.leaf.pem), pem_file("b.pem", other.pem)
    )
    real_apply = upload.apply_plan

    def apply_plan(actor, project, plan, **options):
        if plan.file == "a.pem":
            raise RuntimeError("disk on fire")
        return real_apply(actor, project, plan, **options)

    monkeypatch.setattr(upload, "apply_plan", apply_plan)
    result = client.post(CONFIRM, {"token": response.context["token"]})
    assert [r["result"].status for r in result.context["results"]] == ["rejected", "imported"]
    assert "internal error" in result.content.decode()
    assert Certificate.objects.get().name == "api.example.test"
