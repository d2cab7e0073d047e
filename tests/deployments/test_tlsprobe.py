"""deployments.tlsprobe against a real nginx serving different certificates per SNI name."""

import socket
import time

import pytest

from deployments.tlsprobe import ProbeResult, name_matches, probe, probe_many
from tests.realservices import require
from tests.realservices.certs import make_ca, make_intermediate, make_leaf
from tests.realservices.nginx import Nginx, ServerBlock
from tests.realservices.ports import free_port
from tests.realservices.webhook import WebhookReceiver

HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    root = make_ca()
    intermediate = make_intermediate(root)
    certs = tmp_path_factory.mktemp("certs")
    root_path = certs / "root.pem"
    root_path.write_bytes(root.cert_pem)
    other_root_path = certs / "other-root.pem"
    other_root_path.write_bytes(make_ca("Some Other Root").cert_pem)
    return {
        "root": root_path,
        "other_root": other_root_path,
        "intermediate": intermediate,
        "a": make_leaf(intermediate, ["a.test", "b.test"]),
        "w": make_leaf(intermediate, ["w.test", "*.w.test"]),
        "dir": certs,
    }


@pytest.fixture(scope="module")
def nginx(pki, tmp_path_factory):
    servers = [
        ServerBlock(["a.test", "b.test"], *pki["a"].write(pki["dir"], "a"), default=True),
        ServerBlock(["w.test", "*.w.test"], *pki["w"].write(pki["dir"], "w")),
    ]
    with require(Nginx, tmp_path_factory.mktemp("nginx"), servers) as server:
        yield server


def test_each_sni_name_gets_its_own_certificate(nginx, pki):
    a = probe(HOST, nginx.port, "a.test")
    w = probe(HOST, nginx.port, "w.test")
    assert (a.error, w.error) == (None, None)
    assert a.leaf_sha256 == pki["a"].sha256
    assert w.leaf_sha256 == pki["w"].sha256
    assert a.hostname_matches and w.hostname_matches
    assert a.protocol == "TLSv1.3"
    assert a.cipher
    assert a.not_after == pki["a"].cert.not_valid_after_utc


def test_the_full_served_chain_is_returned_leaf_first(nginx, pki):
    result = probe(HOST, nginx.port, "b.test")
    assert result.chain_der == [pki["a"].der, pki["intermediate"].der]
    assert [c.subject for c in result.certificates()] == [
        pki["a"].cert.subject,
        pki["intermediate"].cert.subject,
    ]


def test_wildcard_certificate_covers_exactly_one_left_label(nginx, pki):
    one_label = probe(HOST, nginx.port, "x.w.test")
    two_labels = probe(HOST, nginx.port, "a.x.w.test")  # nginx's *.w.test still routes it
    assert one_label.leaf_sha256 == two_labels.leaf_sha256 == pki["w"].sha256
    assert one_label.hostname_matches
    assert not two_labels.hostname_matches


def test_unknown_name_gets_the_default_certificate_which_does_not_match(nginx, pki):
    result = probe(HOST, nginx.port, "unknown.test")
    assert result.leaf_sha256 == pki["a"].sha256
    assert result.error is None
    assert not result.hostname_matches


def test_trust_is_judged_only_when_a_ca_file_is_given(nginx, pki):
    assert probe(HOST, nginx.port, "a.test").trusted is None
    trusted = probe(HOST, nginx.port, "a.test", ca_file=pki["root"])
    assert (trusted.trusted, trusted.trust_error) == (True, None)
    untrusted = probe(HOST, nginx.port, "a.test", ca_file=pki["other_root"])
    assert untrusted.trusted is False
    assert untrusted.trust_error


def test_a_wrong_name_does_not_make_a_good_chain_untrusted(nginx, pki):
    result = probe(HOST, nginx.port, "unknown.test", ca_file=pki["root"])
    assert not result.hostname_matches
    assert result.trusted is True


def test_refused_port_gives_an_error_not_an_exception():
    result = probe(HOST, free_port(), "a.test", timeout=2)
    assert result.error is not None
    assert "refused" in result.error
    assert result.leaf_sha256 is None
    assert not result.ok


def test_a_listener_that_never_answers_times_out_within_the_timeout():
    with socket.socket() as silent:
        silent.bind((HOST, 0))
        silent.listen(1)  # accepted by the kernel, never by anyone: no ServerHello comes
        started = time.monotonic()
        result = probe(HOST, silent.getsockname()[1], "a.test", timeout=0.5)
        elapsed = time.monotonic() - started
    assert elapsed < 1.0
    assert "within 0.5 s" in result.error


def test_a_server_that_does_not_speak_tls_gives_a_handshake_error():
    with require(WebhookReceiver) as plain_http:
        result = probe(HOST, plain_http.port, "a.test", timeout=2)
    assert result.error is not None
    assert "TLS handshake" in result.error or "closed the connection" in result.error


def test_probe_many_keeps_the_order_of_the_targets(nginx, pki):
    refused = free_port()
    targets = [
        (HOST, nginx.port, "w.test"),
        (HOST, refused, "a.test"),
        (HOST, nginx.port, "a.test"),
    ] * 4
    results = probe_many(targets, concurrency=4, timeout=2)
    assert [(r.port, r.server_name) for r in results] == [(t[1], t[2]) for t in targets]
    assert all(isinstance(r, ProbeResult) for r in results)
    assert [r.leaf_sha256 for r in results[:3]] == [pki["w"].sha256, None, pki["a"].sha256]


@pytest.mark.parametrize(
    ("pattern", "hostname", "matches"),
    [
        ("a.example.com", "a.example.com", True),
        ("A.Example.com.", "a.example.COM", True),
        ("*.example.com", "www.example.com", True),
        ("*.example.com", "a.b.example.com", False),
        ("*.example.com", "example.com", False),
        ("*.com", "example.com", False),
        ("f*.example.com", "foo.example.com", False),
        ("www.*.example.com", "www.a.example.com", False),
        ("*.bücher.example", "www.xn--bcher-kva.example", True),
    ],
)
def test_name_matching_follows_rfc_6125(pattern, hostname, matches):
    assert name_matches(pattern, hostname) is matches
