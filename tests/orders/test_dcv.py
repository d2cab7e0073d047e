"""DNS-01 solvers: RFC 2136 on a real BIND9, authoritative TXT checks, CNAME delegation, lexicon."""

import importlib.util

import dns.query
import dns.rcode
import dns.resolver
import dns.update
import pytest

from orders.dcv import DcvError
from orders.dcv.delegation import challenge_name, follow_cname
from orders.dcv.dns_check import authoritative_nameservers, check_txt
from orders.dcv.lexicon_provider import LexiconProvider, available_providers, provider_options
from orders.dcv.rfc2136 import Rfc2136Provider
from tests.realservices import require
from tests.realservices.named import Bind9


@pytest.fixture(scope="module")
def named(tmp_path_factory):
    with require(Bind9, tmp_path_factory.mktemp("bind")) as server:
        yield server


def _provider(named: Bind9, **overrides) -> Rfc2136Provider:
    options = {
        "server": named.host,
        "port": named.port,
        "zone": named.zone,
        "tsig_name": named.tsig_name,
        "tsig_secret": named.tsig_secret,
        "tsig_algorithm": named.tsig_algorithm,
        "timeout": 5,
    }
    return Rfc2136Provider(**{**options, **overrides})


def _ns(named: Bind9) -> list[tuple[str, int]]:
    return [(named.host, named.port)]


def _cname(named: Bind9, name: str, target: str) -> None:
    update = dns.update.UpdateMessage(named.zone, keyring=named.keyring, keyname=named.tsig_name)
    update.replace(name, 5, "CNAME", target)
    response = dns.query.tcp(update, named.host, port=named.port, timeout=5)
    assert response.rcode() == dns.rcode.NOERROR


# Record names


def test_challenge_name_drops_the_wildcard_label():
    assert challenge_name("*.example.com") == "_acme-challenge.example.com"
    assert challenge_name("example.com.") == "_acme-challenge.example.com"
    assert challenge_name("www.example.com") == "_acme-challenge.www.example.com"


# RFC 2136


def test_rfc2136_adds_and_removes_one_value_at_a_time(named):
    provider = _provider(named)
    fqdn = "_acme-challenge.one.test"
    provider.present(fqdn, "value-1")
    provider.present(fqdn, "value-2")  # wildcard + apex share the name
    assert sorted(named.query_txt(fqdn)) == ["value-1", "value-2"]
    provider.cleanup(fqdn, "value-1")
    assert named.query_txt(fqdn) == ["value-2"]
    provider.cleanup(fqdn, "value-2")
    assert named.query_txt(fqdn) == []


def test_rfc2136_finds_the_zone_by_soa_when_none_is_configured(named):
    provider = _provider(named, zone="")
    assert provider.zone_for("_acme-challenge.deep.sub.test.").to_text() == "test."
    provider.present("_acme-challenge.soa.test", "v")
    assert named.query_txt("_acme-challenge.soa.test") == ["v"]
    provider.cleanup("_acme-challenge.soa.test", "v")


def test_rfc2136_with_an_unknown_key_is_a_clear_permanent_error(named):
    provider = _provider(named, tsig_name="other-key")
    with pytest.raises(DcvError, match="other-key") as caught:
        provider.present("_acme-challenge.bad.test", "v")
    assert caught.value.permanent


def test_rfc2136_outside_the_zone_is_refused_before_sending(named):
    with pytest.raises(DcvError, match="not in the zone") as caught:
        _provider(named).present("_acme-challenge.example.org", "v")
    assert caught.value.permanent


def test_rfc2136_rejects_a_secret_that_is_not_base64():
    with pytest.raises(DcvError, match="base64"):
        Rfc2136Provider("127.0.0.1", 53, "test.", "k", "not base64!!")


# Checking what the authoritative servers answer


def test_check_txt_finds_the_published_value(named):
    provider = _provider(named)
    fqdn = "_acme-challenge.check.test"
    provider.present(fqdn, "expected")
    try:
        check = check_txt(fqdn, "expected", nameservers=_ns(named))
        wrong = check_txt(fqdn, "other", nameservers=_ns(named))
    finally:
        provider.cleanup(fqdn, "expected")
    assert check.ok and check.found == ["expected"]
    assert check.queried == [f"{named.host}:{named.port}"] and check.error is None
    assert not wrong.ok and wrong.found == ["expected"]


def test_check_txt_reports_nothing_found(named):
    check = check_txt("_acme-challenge.none.test", "expected", nameservers=_ns(named))
    assert not check.ok and check.found == [] and check.error is None


def test_authoritative_nameservers_walks_up_to_the_zone_cut(named):
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [named.host]
    resolver.port = named.port
    servers = authoritative_nameservers("_acme-challenge.deep.x.test", resolver=resolver)
    assert servers == [("127.0.0.1", 53)]  # ns.test. has A 127.0.0.1 in the zone


def test_check_txt_reports_a_server_that_does_not_answer():
    check = check_txt("x.test", "v", nameservers=[("127.0.0.1", 9)], timeout=0.3)
    assert not check.ok and check.error


def test_check_txt_follows_a_cname_to_the_validation_zone(named):
    provider = _provider(named)
    _cname(named, "_acme-challenge.delegated.test.", "delegated.validation.test.")
    provider.present("delegated.validation.test", "via-cname")
    try:
        check = check_txt("_acme-challenge.delegated.test", "via-cname", nameservers=_ns(named))
    finally:
        provider.cleanup("delegated.validation.test", "via-cname")
    assert check.ok and check.found == ["via-cname"]


# CNAME delegation


def test_follow_cname_returns_where_the_txt_must_be_written(named):
    _cname(named, "_acme-challenge.alias.test.", "hop.alias-zone.test.")
    _cname(named, "hop.alias-zone.test.", "final.validation.test.")
    target = follow_cname("_acme-challenge.alias.test", nameservers=_ns(named))
    assert target == "final.validation.test"


def test_follow_cname_returns_the_name_itself_without_an_alias(named):
    assert follow_cname("_acme-challenge.plain.test.", nameservers=_ns(named)) == (
        "_acme-challenge.plain.test"
    )


def test_follow_cname_detects_a_loop(named):
    _cname(named, "loop-a.test.", "loop-b.test.")
    _cname(named, "loop-b.test.", "loop-a.test.")
    with pytest.raises(DcvError, match="loop"):
        follow_cname("loop-a.test", nameservers=_ns(named))


# dns-lexicon (no cloud reachable here: options and credentials only)


def test_lexicon_offers_the_common_providers():
    providers = available_providers()
    assert {"cloudflare", "route53", "aliyun"} <= set(providers)
    assert len(providers) > 50


def test_lexicon_provider_options_come_from_the_provider():
    assert {"auth_token", "zone_id"} <= set(provider_options("cloudflare"))
    assert set(provider_options("aliyun")) == {"auth_key_id", "auth_secret"}


def test_lexicon_provider_validates_name_and_credentials():
    with pytest.raises(DcvError, match="Unknown DNS provider 'nosuch'"):
        LexiconProvider("nosuch", {"auth_token": "t"})
    with pytest.raises(DcvError, match="does not take password") as caught:
        LexiconProvider("cloudflare", {"auth-token": "t", "password": "x"})
    assert caught.value.permanent and "auth_token" in caught.value.message
    with pytest.raises(DcvError, match="needs credentials"):
        LexiconProvider("aliyun", {})
    if importlib.util.find_spec("boto3") is None:  # route53 needs dns-lexicon[route53]
        with pytest.raises(DcvError, match=r"pip install 'dns-lexicon\[route53\]'"):
            LexiconProvider("route53", {"auth_access_key": "k"})
    provider = LexiconProvider(
        "aliyun", {"auth-key-id": "id", "AUTH_SECRET": "s"}, zone="example.com."
    )
    assert provider.credentials == {"auth_key_id": "id", "auth_secret": "s"}
    assert provider.zone == "example.com"
