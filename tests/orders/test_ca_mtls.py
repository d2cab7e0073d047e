"""Mutual TLS over 127.0.0.1 with console-issued certificates, before and after revocation."""

import socket
import ssl
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from inventory.pki.keys import generate_private_key, private_key_pem
from orders.ca import (
    CaMaterial,
    CaSpec,
    IssueRequest,
    Profile,
    RevokedEntry,
    build_crl,
    create_intermediate,
    create_root,
    crl_pem,
    issue,
)

SERVER_NAME = "api.internal.example"
SERVER = Profile("services", usage="server", allowed_domains=["*.internal.example"])
CLIENTS = Profile("clients", usage="client", allowed_domains=["*.internal.example"])


@dataclass
class Served:
    """What the server side saw of one connection."""

    peer_subject: str | None = None
    error: str | None = None
    done: threading.Event = field(default_factory=threading.Event)


@pytest.fixture(scope="module")
def ca() -> CaMaterial:
    root = create_root(CaSpec("CN=mTLS Test Root,O=Acme"))
    return create_intermediate(CaSpec("CN=mTLS Test Issuing CA,O=Acme"), root)


def materialise(directory: Path, name: str, ca: CaMaterial, profile: Profile, **request):
    """Issue a certificate for a fresh key; write chain (leaf + intermediate) and key files."""
    key = generate_private_key("ec-p256")
    cert = issue(ca, IssueRequest(key.public_key(), days=7, **request), profile)
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca.pem
    (directory / f"{name}.pem").write_bytes(chain)
    (directory / f"{name}.key").write_bytes(private_key_pem(key))
    return cert, str(directory / f"{name}.pem"), str(directory / f"{name}.key")


@pytest.fixture
def pki(tmp_path, ca):
    root = tmp_path / "root.pem"
    root.write_bytes(ca.root.public_bytes(serialization.Encoding.PEM))
    server = materialise(tmp_path, "server", ca, SERVER, dns=[SERVER_NAME])
    client = materialise(tmp_path, "client", ca, CLIENTS, subject_cn="billing-worker")
    return {"dir": tmp_path, "root": str(root), "server": server, "client": client}


def serve_once(context: ssl.SSLContext) -> tuple[int, Served]:
    """Accept one TLS connection on 127.0.0.1 in a thread; answer "pong" to "ping"."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    served = Served()

    def run() -> None:
        try:
            conn, _ = listener.accept()
            with context.wrap_socket(conn, server_side=True) as tls:
                peer = tls.getpeercert()
                served.peer_subject = dict(item[0] for item in peer["subject"])["commonName"]
                if tls.recv(4) == b"ping":
                    tls.sendall(b"pong")
        except (OSError, ssl.SSLError) as exc:
            served.error = str(exc)
        finally:
            listener.close()
            served.done.set()

    threading.Thread(target=run, daemon=True).start()
    return listener.getsockname()[1], served


def server_context(pki, crl: bytes | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["server"][1], pki["server"][2])
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cafile=pki["root"])
    if crl is not None:
        crl_file = pki["dir"] / "ca.crl.pem"
        crl_file.write_bytes(crl)
        context.load_verify_locations(cafile=str(crl_file))
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return context


def client_handshake(pki, port: int, client: str = "client") -> bytes:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=pki["root"])
    context.load_cert_chain(pki[client][1], pki[client][2])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=SERVER_NAME) as tls,
    ):
        tls.sendall(b"ping")
        return tls.recv(4)


def revoke(ca: CaMaterial, *certs: x509.Certificate) -> bytes:
    now = datetime.now(UTC)
    entries = [
        RevokedEntry(c.serial_number, now - timedelta(minutes=1), "key_compromise") for c in certs
    ]
    crl = build_crl(
        ca,
        entries,
        this_update=now - timedelta(minutes=1),
        next_update=now + timedelta(days=1),
        crl_number=len(entries),
    )
    return crl_pem(crl)


def test_console_issued_certificates_complete_a_mutual_tls_handshake(pki):
    port, served = serve_once(server_context(pki))
    assert client_handshake(pki, port) == b"pong"
    assert served.done.wait(10)
    assert served.error is None
    assert served.peer_subject == "billing-worker"


def test_the_handshake_still_succeeds_with_a_crl_that_does_not_list_the_client(pki, ca):
    port, served = serve_once(server_context(pki, crl=revoke(ca)))
    assert client_handshake(pki, port) == b"pong"
    assert served.done.wait(10) and served.error is None


def test_the_handshake_fails_once_the_client_certificate_is_revoked(pki, ca):
    port, served = serve_once(server_context(pki, crl=revoke(ca, pki["client"][0])))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        client_handshake(pki, port)
    assert served.done.wait(10)
    assert served.peer_subject is None
    assert "certificate revoked" in served.error


def test_a_server_only_certificate_is_refused_as_a_client_certificate(pki, ca):
    pki["imposter"] = materialise(pki["dir"], "imposter", ca, SERVER, dns=["w.internal.example"])
    port, served = serve_once(server_context(pki))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        client_handshake(pki, port, client="imposter")
    assert served.done.wait(10)
    assert "unsuitable certificate purpose" in served.error
