"""Issuance profiles: every refusal has its reason, and usage becomes the right EKU."""

import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from inventory.pki.keys import generate_private_key
from orders.ca import CaError, CaSpec, IssueRequest, Profile, check, create_root, issue
from tests.pki.factory import make_key

EC_KEY = generate_private_key("ec-p256").public_key()
INTERNAL = Profile("internal", allowed_domains=["*.internal.example"], max_days=90)


def request(*dns: str, days: int = 30, key=EC_KEY, **fields) -> IssueRequest:
    return IssueRequest(public_key=key, dns=list(dns), days=days, **fields)


@pytest.fixture(scope="module")
def ca():
    return create_root(CaSpec("CN=Profiles Test Root"))


def test_a_request_inside_the_profile_is_allowed():
    assert check(INTERNAL, request("api.internal.example")) == []


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("api.internal.example", True),
        ("a.b.c.internal.example", True),
        ("API.Internal.Example.", True),
        ("internal.example", False),
        ("api.notinternal.example", False),
        ("api.other.com", False),
    ],
)
def test_a_wildcard_pattern_matches_any_name_ending_in_its_suffix(name, allowed):
    assert (check(INTERNAL, request(name)) == []) is allowed


def test_a_plain_pattern_matches_exactly_and_a_star_matches_everything():
    exact = Profile("exact", allowed_domains=["internal.example"])
    assert check(exact, request("internal.example")) == []
    assert check(exact, request("api.internal.example")) == [
        "api.internal.example is outside the allowed domains (internal.example)"
    ]
    assert check(Profile("any", allowed_domains=["*"]), request("anything.example.org")) == []


def test_a_name_outside_the_allowed_domains_is_refused_with_the_patterns():
    assert check(INTERNAL, request("api.other.com")) == [
        "api.other.com is outside the allowed domains (*.internal.example)"
    ]


def test_wildcards_need_a_profile_that_allows_them():
    assert check(INTERNAL, request("*.svc.internal.example")) == [
        "*.svc.internal.example is a wildcard, which profile “internal” does not allow"
    ]
    wild = Profile("wild", allowed_domains=["*.internal.example"], allow_wildcards=True)
    assert check(wild, request("*.svc.internal.example")) == []
    assert check(wild, request("*.internal.example")) == []


def test_the_maximum_validity_is_enforced():
    assert check(INTERNAL, request("api.internal.example", days=91)) == [
        "91 days is longer than the maximum of 90 days of profile “internal”"
    ]
    assert check(INTERNAL, request("api.internal.example", days=0)) == [
        "the validity must be at least 1 day"
    ]


def test_san_types_outside_the_profile_are_refused():
    reasons = check(
        INTERNAL,
        request(
            "api.internal.example",
            ips=["10.0.0.7"],
            emails=["ops@team.internal.example"],
            uris=["spiffe://mesh.internal.example/billing"],
        ),
    )
    assert reasons == [
        "IP addresses are not allowed by profile “internal” (it allows DNS names)",
        "emails are not allowed by profile “internal” (it allows DNS names)",
        "URIs are not allowed by profile “internal” (it allows DNS names)",
    ]


def test_emails_and_spiffe_ids_are_held_to_the_allowed_domains():
    mesh = Profile(
        "mesh",
        usage="client",
        allowed_domains=["mesh.internal.example"],
        san_types={"uri", "email"},
    )
    good = request(uris=["spiffe://mesh.internal.example/ns/prod/sa/billing"])
    assert check(mesh, good) == []
    bad = request(uris=["spiffe://evil.example/ns/x"], emails=["me@evil.example"])
    assert check(mesh, bad) == [
        "me@evil.example is outside the allowed domains (mesh.internal.example)",
        "spiffe://evil.example/ns/x is outside the allowed domains (mesh.internal.example)",
    ]


def test_malformed_names_are_refused_each_with_its_reason():
    both = Profile("both", allowed_domains=["*"], san_types={"dns", "ip"})
    reasons = check(both, request("bad_name.example", "10.0.0.1", ips=["999.1.1.1"]))
    assert reasons == [
        "bad_name.example: the label “bad_name” may contain only letters, digits and inner hyphens",
        "10.0.0.1: this is an IP address, not a DNS name; list it as an IP address",
        "999.1.1.1 is not an IP address",
    ]


def test_a_server_certificate_needs_a_name_but_a_client_one_may_be_just_a_cn():
    assert check(INTERNAL, request()) == [
        "a server certificate needs at least one DNS name or IP address"
    ]
    client = Profile("people", usage="client", allowed_domains=["*.internal.example"])
    assert check(client, request(subject_cn="alice")) == []
    assert check(client, request()) == ["the certificate names no one: give a common name or a SAN"]


def test_a_host_like_common_name_is_held_to_the_allowed_domains():
    client = Profile("people", usage="client", allowed_domains=["*.internal.example"])
    assert check(client, request(subject_cn="bank.example.com")) == [
        "the common name bank.example.com is outside the allowed domains (*.internal.example)"
    ]


def test_weak_keys_are_refused():
    weak = make_key("rsa-1024").public_key()
    assert check(INTERNAL, request("a.internal.example", key=weak)) == [
        "RSA keys must have at least 2048 bits, not 1024"
    ]


def test_an_invalid_profile_cannot_be_made():
    with pytest.raises(CaError) as refused:
        Profile("broken", usage="server-ish", san_types={"dns", "fax"}, allowed_domains=["a..b"])
    assert str(refused.value) == (
        "Profile “broken” is invalid: usage must be one of server, client, both, not "
        "'server-ish'; unknown SAN types fax; use dns, ip, email, uri; allowed domain “a..b”: "
        "the label “” may contain only letters, digits and inner hyphens"
    )


def test_issue_refuses_with_the_profile_reasons(ca):
    with pytest.raises(CaError) as refused:
        issue(ca, request("api.other.com", days=365), INTERNAL)
    assert str(refused.value) == (
        "365 days is longer than the maximum of 90 days of profile “internal”; "
        "api.other.com is outside the allowed domains (*.internal.example)"
    )


@pytest.mark.parametrize(
    ("usage", "ekus", "server_ok", "client_ok"),
    [
        ("server", [ExtendedKeyUsageOID.SERVER_AUTH], True, False),
        ("client", [ExtendedKeyUsageOID.CLIENT_AUTH], False, True),
        ("both", [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH], True, True),
    ],
)
def test_usage_becomes_the_extended_key_usage_that_openssl_enforces(
    tmp_path: Path, ca, usage, ekus, server_ok, client_ok
):
    profile = Profile(usage, usage=usage, allowed_domains=["*.internal.example"])
    cert = issue(ca, request("svc.internal.example"), profile)
    assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == ekus
    (tmp_path / "ca.pem").write_bytes(ca.pem)
    (tmp_path / "leaf.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    for purpose, expected in (("sslserver", server_ok), ("sslclient", client_ok)):
        result = subprocess.run(
            ["openssl", "verify", "-purpose", purpose, "-CAfile", "ca.pem", "leaf.pem"],
            cwd=tmp_path, capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert (result.returncode == 0) is expected, (purpose, result.stdout + result.stderr)
        if not expected:
            assert "unsuitable certificate purpose" in result.stdout + result.stderr


def test_rsa_server_keys_also_get_key_encipherment(ca):
    rsa_key = generate_private_key("rsa-2048").public_key()
    server = issue(ca, request("r.internal.example", key=rsa_key), INTERNAL)
    usage = server.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment
    client = Profile("c", usage="client", allowed_domains=["*.internal.example"])
    usage = issue(ca, request("r.internal.example", key=rsa_key), client).extensions
    assert not usage.get_extension_for_class(x509.KeyUsage).value.key_encipherment


def test_internationalised_names_are_issued_in_punycode(ca):
    profile = Profile("idn", allowed_domains=["*.bücher.example"])
    cert = issue(ca, request("shop.Bücher.example"), profile)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["shop.xn--bcher-kva.example"]
    assert profile.allowed_domains == ["*.xn--bcher-kva.example"]
