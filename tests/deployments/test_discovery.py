"""Discovery: real handshakes; unknown served certificates are imported as discovered."""

import pytest
from django.core.exceptions import PermissionDenied

from certconsole.audit.models import AuditEvent
from deployments import discovery
from inventory.models import Certificate, Source
from tests.deployments.nginx_site import (
    HOST,
    NAMES,
    import_versions,
    make_pki,
    new_leaf,
    nginx_site,
)


@pytest.fixture
def pki():
    return make_pki()


@pytest.fixture
def versions(pki, import_pem):
    return import_versions(import_pem, pki)


@pytest.fixture
def site(tmp_path, pki, versions):
    """a.test serves a known version; x.test a certificate the inventory has never seen."""
    unknown = new_leaf(pki, ["x.test", "www.x.test"])
    blocks = {"a": (NAMES, versions.leaves[0]), "x": (["x.test"], unknown)}
    with nginx_site(tmp_path, blocks, [pki.intermediate]) as site:
        site.unknown = unknown
        yield site


def test_an_unknown_served_certificate_is_imported_as_discovered_and_a_known_one_reported(
    site, versions, personas
):
    entries = [f"{HOST}:{site.port}/x.test", f"{HOST}:{site.port}/a.test", f"{HOST}:1/x.test"]

    report = discovery.discover(personas["requester"], versions.certificate.project, entries)

    x, a, closed = report
    assert (x["status"], x["sha256"], x["server_name"]) == (
        "imported",
        site.unknown.sha256,
        "x.test",
    )
    imported = Certificate.objects.get(pk=x["certificate_id"])
    assert imported.source == Source.DISCOVERED and imported.name == x["certificate"]
    assert not imported.has_private_key
    assert imported.current_version.chain_complete  # the served intermediate came along
    assert (a["status"], a["certificate_id"]) == ("known", versions.certificate.pk)
    assert closed["status"] == "unreachable" and "refused" in closed["error"]
    scan = AuditEvent.objects.get(action="discovery.scan")
    assert (scan.detail["imported"], scan.detail["known"], scan.detail["unreachable"]) == (1, 1, 1)

    again = discovery.discover(None, versions.certificate.project, entries[:1])
    assert again[0]["status"] == "known"


def test_a_loopback_range_is_scanned_address_by_address(site, versions):
    report = discovery.discover(None, versions.certificate.project, [f"127.0.0.1/30:{site.port}"])

    by_host = {row["host"]: row for row in report}
    assert sorted(by_host) == ["127.0.0.1", "127.0.0.2"]
    assert by_host["127.0.0.1"]["status"] == "known"  # the default server: a.test's v1
    assert by_host["127.0.0.2"]["status"] == "unreachable"  # nginx listens on .1 only


@pytest.mark.parametrize(
    "entry", ["10.0.0.0/24:443", "192.168.1.7/32:8443", "[2001:db8::/64]:443", "0.0.0.0/0"]
)
def test_ranges_outside_loopback_are_refused_before_any_connection(entry, project):
    with pytest.raises(ValueError, match="only loopback ranges"):
        discovery.discover(None, project, [entry])
    assert not AuditEvent.objects.filter(action="discovery.scan").exists()


def test_entries_are_parsed_with_default_port_sni_and_ipv6():
    targets = discovery.parse_entries(
        "example.com\n# a comment\nexample.com:8443/www.example.com\n[::1]:8443\n::1/128:9443"
    )
    assert [(t.host, t.port, t.server_name) for t in targets] == [
        ("example.com", 443, "example.com"),
        ("example.com", 8443, "www.example.com"),
        ("::1", 8443, "::1"),
        ("::1", 9443, "::1"),
    ]
    with pytest.raises(ValueError, match="not host:port"):
        discovery.parse_entries(["a b:443"])
    with pytest.raises(ValueError, match="not a TCP port"):
        discovery.parse_entries(["example.com:70000"])
    with pytest.raises(ValueError, match="at least one"):
        discovery.parse_entries([" "])


def test_discovery_needs_the_create_permission(personas, project):
    with pytest.raises(PermissionDenied):
        discovery.discover(personas["viewer"], project, ["127.0.0.1:1"])
