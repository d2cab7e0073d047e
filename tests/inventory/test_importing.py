"""The import procedure: what lands in the inventory from a file."""

import pytest

from inventory.importing import import_file, plan_file
from inventory.models import Certificate, CertificateVersion, IssuerCertificate, PrivateKey
from tests.pki.factory import make_leaf


def test_leaf_chain_and_key_are_imported_together(project, issued_chain):
    c = issued_chain
    result = import_file(
        None, project, "site.pem", c.leaf.pem + c.intermediate.pem + c.root.pem + c.leaf.key_pem
    )
    assert result.status == "imported"
    assert result.keys == 1
    [summary] = result.certificates
    assert summary["sha256"] == c.leaf.sha256
    assert summary["has_private_key"] is True
    version = CertificateVersion.objects.get(sha256=c.leaf.sha256)
    assert version.chain_complete
    assert [link.issuer.sha256 for link in version.links.all()] == [
        c.intermediate.sha256,
        c.root.sha256,
    ]
    assert version.private_key.unseal().private_numbers() == c.leaf.key.private_numbers()
    certificate = version.certificate
    assert certificate.current_version == version
    assert certificate.has_private_key
    assert certificate.name == "www.example.test"


def test_same_certificate_twice_is_a_duplicate_and_writes_nothing(project, issued_chain):
    data = issued_chain.leaf.pem
    import_file(None, project, "a.pem", data)
    counts = (Certificate.objects.count(), CertificateVersion.objects.count())
    again = import_file(None, project, "b.pem", data)
    assert again.status == "duplicate"
    assert (Certificate.objects.count(), CertificateVersion.objects.count()) == counts


def test_new_certificate_for_the_same_names_becomes_the_next_version(project, issued_chain):
    first = import_file(None, project, "a.pem", issued_chain.leaf.pem).versions[0]
    renewed = make_leaf(issued_chain.intermediate, days=200)
    plan = plan_file(None, project, "b.pem", renewed.pem)
    assert plan.certificates[0].outcome == "new_version"
    second = import_file(None, project, "b.pem", renewed.pem).versions[0]
    assert second.certificate_id == first.certificate_id
    first.refresh_from_db()
    assert first.status == "superseded"
    assert second.certificate.current_version == second


def test_missing_intermediate_is_reported_not_guessed(project, issued_chain):
    version = import_file(None, project, "leaf.pem", issued_chain.leaf.pem).versions[0]
    assert not version.chain_complete
    assert version.missing_issuer == "CN=Test Intermediate CA"
    assert any(f["code"] == "chain_incomplete" for f in version.lint_findings)


def test_pool_completes_a_later_upload(project, issued_chain):
    c = issued_chain
    import_file(None, project, "cas.pem", c.intermediate.pem + c.root.pem)
    assert IssuerCertificate.objects.filter(sha256=c.intermediate.sha256).exists()
    other = make_leaf(c.intermediate, name="api.example.test")
    version = import_file(None, project, "api.pem", other.pem).versions[0]
    assert version.chain_complete


def test_key_alone_attaches_to_its_certificate(project, issued_chain):
    import_file(None, project, "cert.pem", issued_chain.leaf.pem)
    result = import_file(None, project, "key.pem", issued_chain.leaf.key_pem)
    assert result.status == "imported"
    assert Certificate.objects.get().has_private_key


def test_unmatched_key_needs_confirmation(project):
    from inventory.pki.keys import private_key_pem
    from tests.pki.factory import make_key

    data = private_key_pem(make_key())
    refused = import_file(None, project, "k.pem", data)
    assert refused.status == "rejected"
    assert "matches no certificate" in refused.error
    assert PrivateKey.objects.count() == 0
    stored = import_file(None, project, "k.pem", data, store_unmatched_keys=True)
    assert stored.status == "imported"
    assert PrivateKey.objects.get().unmatched


@pytest.mark.parametrize("data,message", [(b"hello", "Not a certificate"), (b"", "empty")])
def test_bad_files_are_rejected_with_a_reason(project, data, message):
    result = import_file(None, project, "bad.txt", data)
    assert result.status == "rejected"
    assert message in result.error
    assert Certificate.objects.count() == 0
