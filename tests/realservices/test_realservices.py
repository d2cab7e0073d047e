"""Each real test server works the way product tests will use it."""

import base64
import datetime as dt
import http.client
import io
import os
import smtplib
import time
from email.message import EmailMessage

import dns.query
import dns.rcode
import dns.update
import josepy as jose
import paramiko
import pytest
import redis
from acme import challenges, crypto_util, messages
from acme import client as acme_client
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import PolicyBuilder, Store

from deployments.tlsprobe import probe
from tests.realservices import ServiceUnavailable, require
from tests.realservices.certs import make_ca, make_intermediate, make_leaf
from tests.realservices.haproxy import HAProxy
from tests.realservices.http01 import Http01Responder
from tests.realservices.named import Bind9
from tests.realservices.nginx import Nginx, ServerBlock
from tests.realservices.pebble import Pebble
from tests.realservices.redis import RedisServer
from tests.realservices.smtp import SmtpSink
from tests.realservices.sshd import Sshd
from tests.realservices.webhook import WebhookReceiver

# require()


def _missing(*args, **kwargs):
    raise ServiceUnavailable("frobd is not installed (apt-get install frobd)")


def test_require_skips_a_missing_service_locally(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="frobd is not installed"), require(_missing):
        pass


def test_require_fails_a_missing_service_on_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="required on CI"), require(_missing):
        pass


# Redis


def test_redis_answers_ping_set_and_get(tmp_path):
    with require(RedisServer, tmp_path) as server:
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        client.set("certconsole:test", "ok")
        assert client.get("certconsole:test") == b"ok"
        client.close()
    assert not server.ping()


# SMTP


def _email(to: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "console@example.org"
    message["To"] = to
    message["Subject"] = "Certificate a.test expires in 7 days"
    message.set_content("Renew it.")
    return message


def test_smtp_sink_receives_and_parses_a_message():
    with require(SmtpSink) as sink:
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
            smtp.send_message(_email("ops@example.org"))
        [received] = sink.wait_for(1)
    assert received["Subject"] == "Certificate a.test expires in 7 days"
    assert received["X-RcptTo"] == "ops@example.org"
    assert received.get_content().strip() == "Renew it."


def test_smtp_sink_rejects_matching_recipients_and_can_go_down():
    with require(SmtpSink, reject=r"@bad\.example$") as sink:
        with smtplib.SMTP(sink.host, sink.port, timeout=5) as smtp:
            with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
                smtp.send_message(_email("nobody@bad.example"))
            assert refused.value.recipients["nobody@bad.example"][0] == 550
        sink.stop()
        with pytest.raises(ConnectionRefusedError):
            smtplib.SMTP(sink.host, sink.port, timeout=5)
    assert sink.messages == []


# Webhook


def test_webhook_receiver_records_a_post_and_answers_the_configured_status():
    with require(WebhookReceiver, status=503, response_body=b"busy") as receiver:
        conn = http.client.HTTPConnection(receiver.host, receiver.port)
        conn.request("POST", "/hook?x=1", body=b'{"event": "deployed"}', headers={"X-Sig": "abc"})
        response = conn.getresponse()
        assert (response.status, response.read()) == (503, b"busy")
        conn.close()
        [request] = receiver.wait_for(1)
    assert (request.method, request.path) == ("POST", "/hook?x=1")
    assert request.headers["x-sig"] == "abc"
    assert request.json() == {"event": "deployed"}


# Pebble (ACME)


class _FastTime:
    """The acme library sleeps 1 s between polls; Pebble answers in milliseconds."""

    time = staticmethod(time.time)

    @staticmethod
    def sleep(seconds: float) -> None:
        time.sleep(min(seconds, 0.05))


@pytest.fixture
def fast_acme_polling(monkeypatch):
    monkeypatch.setattr(acme_client, "time", _FastTime)


def _acme_client(pebble: Pebble, eab: tuple[str, str] | None = None) -> acme_client.ClientV2:
    account_key = jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    net = acme_client.ClientNetwork(
        account_key, alg=jose.ES256, verify_ssl=str(pebble.ca_bundle_path)
    )
    directory = messages.Directory.from_json(net.get(pebble.directory_url).json())
    acme = acme_client.ClientV2(directory, net=net)
    binding = None
    if eab is not None:
        binding = messages.ExternalAccountBinding.from_data(
            account_public_key=account_key.public_key(),
            kid=eab[0],
            hmac_key=eab[1],
            directory=directory,
        )
    acme.new_account(
        messages.NewRegistration.from_data(
            email="ops@example.org",
            terms_of_service_agreed=True,
            external_account_binding=binding,
        )
    )
    return acme


def _issue(acme: acme_client.ClientV2, names: list[str], answer) -> list[x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    order = acme.new_order(crypto_util.make_csr(key_pem, names))
    for authz in order.authorizations:
        if authz.body.status == messages.STATUS_VALID:
            continue
        answer(acme, authz)
    deadline = dt.datetime.now() + dt.timedelta(seconds=20)
    order = acme.poll_and_finalize(order, deadline=deadline)
    return x509.load_pem_x509_certificates(order.fullchain_pem.encode())


def _verify(chain: list[x509.Certificate], root_pem: bytes, name: str) -> None:
    root = x509.load_pem_x509_certificate(root_pem)
    verifier = PolicyBuilder().store(Store([root])).build_server_verifier(x509.DNSName(name))
    verifier.verify(chain[0], chain[1:])


def test_pebble_issues_a_certificate_for_two_names_over_http01(tmp_path, fast_acme_polling):
    with require(Pebble, tmp_path) as pebble:
        responder = Http01Responder(pebble.http01_port)
        try:

            def answer(acme, authz):
                chall = next(
                    c for c in authz.body.challenges if isinstance(c.chall, challenges.HTTP01)
                )
                response, validation = chall.response_and_validation(acme.net.key)
                responder.tokens[chall.chall.encode("token")] = validation
                acme.answer_challenge(chall, response)

            chain = _issue(_acme_client(pebble), ["a.test", "b.test"], answer)
        finally:
            responder.close()
        sans = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sorted(sans.get_values_for_type(x509.DNSName)) == ["a.test", "b.test"]
        _verify(chain, pebble.roots(), "b.test")

        old_root = pebble.roots()
        pebble.restart()
        assert pebble.roots() != old_root


def test_pebble_with_bind9_validates_dns01_published_by_rfc2136(tmp_path, fast_acme_polling):
    with (
        require(Bind9, tmp_path / "bind") as named,
        require(Pebble, tmp_path / "pebble", dns_server=named.nameserver) as pebble,
    ):

        def answer(acme, authz):
            chall = next(c for c in authz.body.challenges if isinstance(c.chall, challenges.DNS01))
            response, validation = chall.response_and_validation(acme.net.key)
            fqdn = chall.chall.validation_domain_name(authz.body.identifier.value) + "."
            _rfc2136(named, "add", fqdn, validation)
            acme.answer_challenge(chall, response)

        chain = _issue(_acme_client(pebble), ["*.x.test", "x.test"], answer)
        _verify(chain, pebble.roots(), "www.x.test")


def test_pebble_requires_external_account_binding_when_given_keys(tmp_path):
    kid, hmac_key = "kid-1", "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
    with require(Pebble, tmp_path, eab_keys={kid: hmac_key}) as pebble:
        with pytest.raises(messages.Error, match="externalAccountRequired"):
            _acme_client(pebble)
        assert _acme_client(pebble, eab=(kid, hmac_key))


# BIND9


def _rfc2136(named: Bind9, action: str, fqdn: str, value: str | None = None) -> None:
    update = dns.update.UpdateMessage(named.zone, keyring=named.keyring, keyname=named.tsig_name)
    if action == "add":
        update.add(fqdn, 5, "TXT", f'"{value}"')
    else:
        update.delete(fqdn, "TXT")
    response = dns.query.tcp(update, named.host, port=named.port, timeout=5)
    assert response.rcode() == dns.rcode.NOERROR, dns.rcode.to_text(response.rcode())


def test_bind9_accepts_tsig_signed_rfc2136_updates(tmp_path):
    with require(Bind9, tmp_path) as named:
        fqdn = "_acme-challenge.a.test."
        _rfc2136(named, "add", fqdn, "token-1")
        assert named.query_txt(fqdn) == ["token-1"]
        _rfc2136(named, "delete", fqdn)
        assert named.query_txt(fqdn) == []


def test_bind9_refuses_updates_without_the_key(tmp_path):
    with require(Bind9, tmp_path) as named:
        update = dns.update.UpdateMessage(named.zone)
        update.add("evil.test.", 5, "TXT", '"x"')
        response = dns.query.tcp(update, named.host, port=named.port, timeout=5)
        assert response.rcode() == dns.rcode.REFUSED


# nginx


def test_nginx_serves_each_sni_name_its_certificate_and_reload_swaps_it(tmp_path):
    ca = make_ca()
    a, w = make_leaf(ca, ["a.test"]), make_leaf(ca, ["w.test", "*.w.test"])
    a_cert, a_key = a.write(tmp_path / "certs", "a")
    servers = [
        ServerBlock(["a.test"], a_cert, a_key, default=True),
        ServerBlock(["w.test", "*.w.test"], *w.write(tmp_path / "certs", "w")),
    ]
    with require(Nginx, tmp_path / "nginx", servers) as nginx:
        assert probe("127.0.0.1", nginx.port, "a.test").leaf_sha256 == a.sha256
        assert probe("127.0.0.1", nginx.port, "x.w.test").leaf_sha256 == w.sha256

        renewed = make_leaf(ca, ["a.test"])
        new_cert, new_key = renewed.write(tmp_path / "certs", "a.new")
        os.replace(new_key, a_key)
        os.replace(new_cert, a_cert)
        nginx.reload()
        served = {probe("127.0.0.1", nginx.port, "a.test").leaf_sha256 for _ in range(5)}
        assert served == {renewed.sha256}
        assert probe("127.0.0.1", nginx.port, "w.test").leaf_sha256 == w.sha256


# HAProxy


def test_haproxy_runtime_api_replaces_a_served_certificate(tmp_path):
    ca = make_ca()
    intermediate = make_intermediate(ca)
    a, w = make_leaf(intermediate, ["a.test"]), make_leaf(ca, ["w.test"])
    a_pem = a.write_combined(tmp_path / "a.pem")
    w_pem = w.write_combined(tmp_path / "w.pem")
    with require(HAProxy, tmp_path, [a_pem, w_pem]) as haproxy:
        assert probe("127.0.0.1", haproxy.port, "a.test").leaf_sha256 == a.sha256
        renewed = make_leaf(intermediate, ["a.test"])
        payload = (renewed.fullchain_pem + renewed.key_pem).decode()
        assert "Transaction created" in haproxy.runtime_api(f"set ssl cert {a_pem}", payload)
        assert "Success!" in haproxy.runtime_api(f"commit ssl cert {a_pem}")
        result = probe("127.0.0.1", haproxy.port, "a.test")
        assert result.leaf_sha256 == renewed.sha256
        assert len(result.chain_der) == 2
        assert probe("127.0.0.1", haproxy.port, "w.test").leaf_sha256 == w.sha256


# sshd


def test_sshd_accepts_the_client_key_for_sftp_and_exec_with_a_pinned_host_key(tmp_path):
    with require(Sshd, tmp_path / "sshd") as sshd:
        key_type, key_b64 = sshd.host_key_public.split()[:2]
        client = paramiko.SSHClient()
        client.get_host_keys().add(
            f"[{sshd.host}]:{sshd.port}",
            key_type,
            paramiko.PKey.from_type_string(key_type, base64.b64decode(key_b64)),
        )
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(
            sshd.host,
            port=sshd.port,
            username=sshd.username,
            key_filename=str(sshd.client_key_path),
            look_for_keys=False,
            allow_agent=False,
            timeout=5,
        )
        try:
            remote = tmp_path / "uploaded.pem"
            with client.open_sftp() as sftp:
                sftp.putfo(io.BytesIO(b"PEM DATA\n"), f"{remote}.tmp")
                sftp.posix_rename(f"{remote}.tmp", str(remote))
            _, stdout, _ = client.exec_command(f"cat {remote}", timeout=5)
            assert stdout.read() == b"PEM DATA\n"
            assert stdout.channel.recv_exit_status() == 0
        finally:
            client.close()


def test_sshd_rejects_a_changed_host_key(tmp_path):
    with require(Sshd, tmp_path / "sshd") as sshd:
        other = Sshd(tmp_path / "other")  # keys only; never started
        key_type, key_b64 = other.host_key_public.split()[:2]
        client = paramiko.SSHClient()
        client.get_host_keys().add(
            f"[{sshd.host}]:{sshd.port}",
            key_type,
            paramiko.PKey.from_type_string(key_type, base64.b64decode(key_b64)),
        )
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        with pytest.raises(paramiko.BadHostKeyException):
            client.connect(
                sshd.host,
                port=sshd.port,
                username=sshd.username,
                key_filename=str(sshd.client_key_path),
                look_for_keys=False,
                allow_agent=False,
                timeout=5,
            )
        client.close()
