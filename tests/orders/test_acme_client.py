"""orders.acme against a real Pebble (and BIND9 for RFC 2136), one state-machine step at a time."""

import datetime as dt
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from acme import messages
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from orders.acme import (
    AcmeClient,
    AcmeConfig,
    AcmeError,
    AuthzSnapshot,
    ChallengeSnapshot,
    OrderSnapshot,
    directory_meta,
    generate_account_key,
    poll_until,
    register_account,
)
from orders.acme.client import ari_certificate_id
from orders.acme.errors import translate
from orders.dcv.delegation import challenge_name
from orders.dcv.dns_check import check_txt
from orders.dcv.rfc2136 import Rfc2136Provider
from tests.realservices import require
from tests.realservices.http01 import Http01Responder
from tests.realservices.named import Bind9
from tests.realservices.pebble import Pebble

FAST = {"interval": 0.05, "timeout": 30, "max_interval": 0.5}
EAB_KID, EAB_HMAC = "kid-1", "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"


# Helpers


def _config(pebble: Pebble) -> AcmeConfig:
    return AcmeConfig(pebble.directory_url, ca_bundle=str(pebble.ca_bundle_path), timeout=5)


def _account(pebble: Pebble, **eab) -> AcmeClient:
    key = generate_account_key()
    config = _config(pebble)
    info = register_account(config, key, email="ops@example.org", agree_tos=True, **eab)
    return AcmeClient(config, key, info.uri)


def _csr(names: list[str]) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def pebble(tmp_path):
    with require(Pebble, tmp_path) as server:
        yield server


def _wait_authorizations(client: AcmeClient, order: OrderSnapshot, **poll) -> OrderSnapshot:
    return poll_until(
        lambda: client.fetch_order(order.url),
        lambda o: o.status != "pending",
        **{**FAST, **poll},
    )


def _issue(
    client: AcmeClient,
    names: list[str],
    solve: Callable[[AuthzSnapshot, ChallengeSnapshot], None],
    kind: str,
    **poll,
) -> tuple[OrderSnapshot, bytes]:
    """The state machine's steps in a row: order, answer, wait, finalize, wait, download."""
    csr = _csr(names)
    order = client.new_order(csr)
    for authz in order.authorizations:
        if authz.status == "valid":
            continue
        challenge = authz.challenge(kind)
        solve(authz, challenge)
        client.answer_challenge(challenge)
    order = _wait_authorizations(client, order, **poll)
    if order.failure():
        raise order.failure()
    client.finalize(order.url, csr)
    order = poll_until(
        lambda: client.fetch_order(order.url, with_authorizations=False),
        lambda o: o.status in ("valid", "invalid"),
        **{**FAST, **poll},
    )
    return order, client.download_certificate(order).fullchain_pem


def _verified_chain(fullchain: bytes, root_pem: bytes, name: str) -> list[str]:
    certs = x509.load_pem_x509_certificates(fullchain)
    store = Store([x509.load_pem_x509_certificate(root_pem)])
    verifier = PolicyBuilder().store(store).build_server_verifier(x509.DNSName(name))
    return [c.subject.rfc4514_string() for c in verifier.verify(certs[0], certs[1:])]


def _sans(fullchain: bytes) -> list[str]:
    leaf = x509.load_pem_x509_certificates(fullchain)[0]
    ext = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return sorted(ext.get_values_for_type(x509.DNSName))


def _http01(client: AcmeClient, server: Http01Responder):
    def solve(authz: AuthzSnapshot, challenge: ChallengeSnapshot) -> None:
        server.tokens[challenge.token] = client.key_authorization(challenge.token)

    return solve


# Accounts


def test_directory_meta_shows_terms_and_whether_eab_is_required(pebble):
    meta = directory_meta(_config(pebble))
    assert meta["terms_of_service"].startswith("data:text/plain")
    assert meta["external_account_required"] is False
    assert meta["renewal_info"] is False
    # A private CA's bundle may also be given as PEM text, as stored on the issuer.
    pem_config = AcmeConfig(pebble.directory_url, ca_bundle=pebble.ca_bundle_path.read_text())
    assert directory_meta(pem_config) == meta
    with pytest.raises(AcmeError, match="TLS error") as untrusted:
        directory_meta(AcmeConfig(pebble.directory_url))
    assert untrusted.value.permanent


def test_register_account_returns_its_url_and_finds_it_again_for_the_same_key(pebble):
    key = generate_account_key()
    assert key.startswith(b"-----BEGIN PRIVATE KEY-----")
    info = register_account(_config(pebble), key, email="ops@example.org", agree_tos=True)
    assert "/my-account/" in info.uri
    assert info.terms_of_service.startswith("data:text/plain")
    again = register_account(_config(pebble), key, email="ops@example.org", agree_tos=True)
    assert again.uri == info.uri


def test_register_account_needs_the_terms_agreed(pebble):
    with pytest.raises(AcmeError, match="You must agree to the terms of service") as caught:
        register_account(_config(pebble), generate_account_key(), email=None, agree_tos=False)
    assert caught.value.permanent


def test_external_account_binding_is_required_and_checked(tmp_path):
    with require(Pebble, tmp_path, eab_keys={EAB_KID: EAB_HMAC}) as pebble:
        config = _config(pebble)
        assert directory_meta(config)["external_account_required"] is True
        key = generate_account_key()
        with pytest.raises(AcmeError, match="requires external account binding") as missing:
            register_account(config, key, email="ops@example.org", agree_tos=True)
        assert missing.value.permanent
        with pytest.raises(AcmeError) as wrong:
            register_account(
                config, key, email=None, agree_tos=True, eab_kid="kid-2", eab_hmac_key=EAB_HMAC
            )
        assert wrong.value.permanent and wrong.value.detail
        info = register_account(
            config, key, email=None, agree_tos=True, eab_kid=EAB_KID, eab_hmac_key=EAB_HMAC
        )
        assert "/my-account/" in info.uri


# Issuance


def test_http01_order_for_two_names_issues_a_chain_that_verifies(tmp_path):
    with require(Pebble, tmp_path, env={"PEBBLE_ALTERNATE_ROOTS": "1"}) as pebble:
        client = _account(pebble)
        http01 = Http01Responder(pebble.http01_port)
        try:
            csr = _csr(["a.test", "b.test"])
            order = client.new_order(csr)
            assert order.status == "pending"
            assert sorted(a.identifier for a in order.authorizations) == ["a.test", "b.test"]
            for authz in order.authorizations:
                challenge = authz.challenge("http-01")
                assert challenge.status == "pending" and challenge.token
                _http01(client, http01)(authz, challenge)
                client.answer_challenge(challenge.url)  # a URL works as well as a snapshot
            order = _wait_authorizations(client, order)
            assert order.status == "ready"
            assert {a.status for a in order.authorizations} == {"valid"}

            order = client.finalize(order.url, csr)
            assert order.status in ("processing", "valid")
            again = client.finalize(order.url, csr)  # idempotent: a resumed worker may repeat it
            assert again.url == order.url
            order = poll_until(
                lambda: client.fetch_order(order.url), lambda o: o.status == "valid", **FAST
            )
            download = client.download_certificate(order)
        finally:
            http01.close()
        assert _sans(download.fullchain_pem) == ["a.test", "b.test"]
        chain = _verified_chain(download.fullchain_pem, pebble.roots(0), "b.test")
        assert chain[0] == "CN=a.test" and "Pebble Root CA" in chain[-1]
        assert len(download.alternates) == 1
        _verified_chain(download.alternates[0], pebble.roots(1), "a.test")
        assert client.renewal_info(download.fullchain_pem) is None  # Pebble 2.4 has no ARI


def test_dns01_wildcard_and_apex_through_challtestsrv(pebble):
    client = _account(pebble)

    def solve(authz, challenge):
        pebble.set_txt(challenge_name(authz.name), client.dns01_txt_value(challenge.token))

    try:
        _, fullchain = _issue(client, ["*.w.test", "w.test"], solve, "dns-01")
    finally:
        pebble.clear_txt("_acme-challenge.w.test")
    assert _sans(fullchain) == ["*.w.test", "w.test"]
    _verified_chain(fullchain, pebble.roots(), "www.w.test")


def test_dns01_wildcard_and_apex_through_rfc2136_on_bind(tmp_path):
    with (
        require(Bind9, tmp_path / "bind") as named,
        require(Pebble, tmp_path / "pebble", dns_server=named.nameserver) as pebble,
    ):
        client = _account(pebble)
        provider = Rfc2136Provider(
            named.host, named.port, "", named.tsig_name, named.tsig_secret, named.tsig_algorithm
        )
        published: list[tuple[str, str]] = []
        order = client.new_order(_csr(["*.x.test", "x.test"]))
        assert sorted((a.identifier, a.wildcard) for a in order.authorizations) == [
            ("x.test", False),
            ("x.test", True),
        ]

        def solve(authz, challenge):
            fqdn, value = challenge_name(authz.name), client.dns01_txt_value(challenge.token)
            provider.present(fqdn, value)
            published.append((fqdn, value))
            check = check_txt(fqdn, value, nameservers=[(named.host, named.port)])
            assert check.ok, check

        try:
            _, fullchain = _issue(client, ["*.x.test", "x.test"], solve, "dns-01")
        finally:
            for fqdn, value in published:
                provider.cleanup(fqdn, value)
        assert named.query_txt("_acme-challenge.x.test") == []
        _verified_chain(fullchain, pebble.roots(), "x.test")


def test_authorizations_the_ca_already_holds_valid_are_skipped(tmp_path):
    with require(Pebble, tmp_path, env={"PEBBLE_AUTHZREUSE": "100"}) as pebble:
        client = _account(pebble)
        http01 = Http01Responder(pebble.http01_port)
        try:
            _issue(client, ["r.test"], _http01(client, http01), "http-01")
            order = client.new_order(_csr(["r.test"]))
            [authz] = order.authorizations
            assert authz.status == "valid"
            with pytest.raises(AcmeError, match="not pending") as caught:
                client.answer_challenge(authz.challenge("http-01"))
            assert caught.value.permanent
            second, fullchain = _issue(client, ["r.test"], _http01(client, http01), "http-01")
        finally:
            http01.close()
        assert second.status == "valid" and _sans(fullchain) == ["r.test"]


def test_revocation_with_a_reason_and_a_second_revocation_is_refused(pebble):
    client = _account(pebble)
    http01 = Http01Responder(pebble.http01_port)
    try:
        _, fullchain = _issue(client, ["v.test"], _http01(client, http01), "http-01")
    finally:
        http01.close()
    leaf_pem = x509.load_pem_x509_certificates(fullchain)[0].public_bytes(
        serialization.Encoding.PEM
    )
    client.revoke(leaf_pem, 4)  # superseded
    with pytest.raises(AcmeError) as caught:
        client.revoke(leaf_pem, 4)
    assert caught.value.permanent and caught.value.acme_type == "alreadyRevoked"


def test_a_wrong_txt_value_fails_permanently_with_the_cas_detail(pebble):
    client = _account(pebble)

    def solve(authz, challenge):
        pebble.set_txt(challenge_name(authz.name), "not-the-right-value")

    try:
        with pytest.raises(AcmeError) as caught:
            _issue(client, ["bad.test"], solve, "dns-01")
    finally:
        pebble.clear_txt("_acme-challenge.bad.test")
    error = caught.value
    assert error.permanent
    assert error.acme_type == "unauthorized"
    assert "Correct value not found for DNS challenge" in error.detail
    assert error.message.startswith("bad.test: dns-01 validation failed:")


def test_a_ca_outage_is_transient_and_a_new_client_works_after_restart(pebble):
    client = _account(pebble)
    http01 = Http01Responder(pebble.http01_port)
    try:
        order = client.new_order(_csr(["o.test"]))
        pebble.stop()
        with pytest.raises(AcmeError, match="Cannot reach the CA") as caught:
            client.fetch_order(order.url)
        assert caught.value.transient
        with pytest.raises(AcmeError) as meta:
            directory_meta(_config(pebble))
        assert meta.value.transient

        pebble.start()  # a new CA state: accounts and orders are gone
        with pytest.raises(AcmeError) as lost:
            client.fetch_order(order.url)
        assert lost.value.permanent
        fresh = _account(pebble)
        order, fullchain = _issue(fresh, ["o.test"], _http01(fresh, http01), "http-01")
    finally:
        http01.close()
    _verified_chain(fullchain, pebble.roots(), "o.test")


def test_pebble_defaults_with_nonce_rejection_and_validation_delay(tmp_path):
    # Pebble's own defaults: 5 % of nonces rejected, 0-15 s VA sleep, 50 % authz reuse.
    env = {"PEBBLE_VA_NOSLEEP": None, "PEBBLE_WFE_NONCEREJECT": None, "PEBBLE_AUTHZREUSE": None}
    with require(Pebble, tmp_path, env=env) as pebble:
        http01 = Http01Responder(pebble.http01_port)
        try:

            def retried(call):  # what the state machine does with transient errors
                return poll_until(call, lambda _: True, **FAST)

            key = generate_account_key()
            info = retried(
                lambda: register_account(_config(pebble), key, email=None, agree_tos=True)
            )
            client = AcmeClient(_config(pebble), key, info.uri)
            csr = _csr(["slow.test"])
            order = retried(lambda: client.new_order(csr))
            [authz] = order.authorizations
            challenge = authz.challenge("http-01")
            _http01(client, http01)(authz, challenge)
            retried(lambda: client.answer_challenge(challenge))
            order = poll_until(
                lambda: client.fetch_order(order.url),
                lambda o: o.status != "pending",
                interval=0.2,
                timeout=40,
                max_interval=1,
            )
            assert order.status == "ready", order
            retried(lambda: client.finalize(order.url, csr))
            order = poll_until(
                lambda: client.fetch_order(order.url), lambda o: o.status == "valid", **FAST
            )
            fullchain = retried(lambda: client.download_certificate(order)).fullchain_pem
        finally:
            http01.close()
        assert _sans(fullchain) == ["slow.test"]


# Renewal information (RFC 9773)


def test_ari_certificate_id_matches_the_rfc_example():
    key = ec.generate_private_key(ec.SECP256R1())
    aki = bytes.fromhex("69885B6B87464041E1B37B847BA0AE2CDE01C8D4")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ari.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(0x87654321)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=90))
        .add_extension(x509.AuthorityKeyIdentifier(aki, None, None), False)
        .sign(key, hashes.SHA256())
    )
    assert ari_certificate_id(cert) == "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"


def test_renewal_info_reads_the_window_from_the_directorys_renewal_info(tmp_path, pebble):
    client = _account(pebble)
    http01 = Http01Responder(pebble.http01_port)
    try:
        _, fullchain = _issue(client, ["ari.test"], _http01(client, http01), "http-01")
    finally:
        http01.close()
    seen: list[str] = []

    class Ari(BaseHTTPRequestHandler):  # a CA front with ARI, as Let's Encrypt has
        def do_GET(self):
            seen.append(self.path)
            base = f"http://127.0.0.1:{self.server.server_port}"
            if self.path == "/dir":
                body, headers = {"newNonce": base + "/nonce", "renewalInfo": base + "/ari"}, {}
            else:
                window = {"start": "2030-01-01T00:00:00Z", "end": "2030-01-03T00:00:00Z"}
                body, headers = {"suggestedWindow": window}, {"Retry-After": "21600"}
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(json.dumps(body).encode())

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ari)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}).start()
    try:
        config = AcmeConfig(f"http://127.0.0.1:{server.server_port}/dir")
        ari = AcmeClient(config, generate_account_key(), "http://127.0.0.1/acct/1")
        window = ari.renewal_info(fullchain)
    finally:
        server.shutdown()
        server.server_close()
    leaf = x509.load_pem_x509_certificates(fullchain)[0]
    assert seen == ["/dir", f"/ari/{ari_certificate_id(leaf)}"]
    assert window.start == dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    assert window.end == dt.datetime(2030, 1, 3, tzinfo=dt.UTC)
    assert window.retry_after == 21600


# Error mapping and polling (no CA needed)


def _response(status: int, **headers) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers)
    return response


def test_rate_limits_are_transient_with_the_cas_retry_after():
    problem = messages.Error.with_code("rateLimited", detail="too many new orders recently")
    error = translate(problem, _response(429, **{"Retry-After": "120"}))
    assert error.transient and error.retry_after == 120
    assert error.detail == "too many new orders recently"
    assert error.acme_type == "rateLimited"


@pytest.mark.parametrize(
    ("code", "status", "permanent"),
    [
        ("badNonce", 400, False),
        ("serverInternal", 500, False),
        ("unauthorized", 403, True),
        ("rejectedIdentifier", 400, True),
        ("malformed", 400, True),
        ("caa", 403, True),
        ("dns", 400, True),
        ("connection", 400, True),
    ],
)
def test_ca_problems_map_to_transient_or_permanent(code, status, permanent):
    error = translate(messages.Error.with_code(code, detail="the CA says"), _response(status))
    assert error.permanent is permanent
    assert error.detail == "the CA says" and error.acme_type == code


def test_poll_until_waits_as_the_ca_asks_and_backs_off():
    answers = iter(
        [AcmeError("busy", retry_after=7), "pending", AcmeError("down"), "pending", "valid"]
    )
    pauses: list[float] = []

    def fetch():
        answer = next(answers)
        if isinstance(answer, AcmeError):
            raise answer
        return answer

    result = poll_until(
        fetch,
        lambda s: s == "valid",
        interval=1,
        timeout=100,
        backoff=2,
        max_interval=3,
        sleep=pauses.append,
    )
    assert result == "valid"
    assert pauses == [7, 2, 3, 3]


def test_poll_until_raises_permanent_errors_and_gives_up_at_the_timeout():
    def refuse():
        raise AcmeError("no", permanent=True)

    with pytest.raises(AcmeError, match="no"):
        poll_until(refuse, bool, interval=0.01, timeout=1)
    with pytest.raises(AcmeError, match="Gave up waiting") as caught:
        poll_until(lambda: "pending", lambda s: s == "valid", interval=0.01, timeout=0.05)
    assert caught.value.transient


def test_unreadable_input_is_a_permanent_error_before_anything_is_sent():
    client = AcmeClient(AcmeConfig("https://127.0.0.1:9/dir"), generate_account_key(), "x")
    with pytest.raises(AcmeError, match="The CSR cannot be read") as caught:
        client.new_order(b"not a csr")
    assert caught.value.permanent
    with pytest.raises(AcmeError, match="The certificate cannot be read"):
        client.revoke(b"not a certificate", 0)
    with pytest.raises(AcmeError, match="The account key cannot be read"):
        AcmeClient(AcmeConfig("https://127.0.0.1:9/dir"), b"junk", "x")
