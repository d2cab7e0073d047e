"""Live TLS handshake with SNI: the chain a server really serves and whether it fits the name.

Framework-free. `probe()` never raises for network trouble: refused connections, timeouts and
failed handshakes come back as a sentence in `ProbeResult.error`.

The handshake uses pyOpenSSL because the standard library before Python 3.13 only exposes the
leaf certificate, not the chain the server sent (`SSLSocket.get_unverified_chain()` is 3.13+).
Certificates are not verified to get a result; trust is judged separately against `ca_file`.
"""

import contextlib
import datetime as dt
import functools
import hashlib
import ipaddress
import selectors
import socket
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from OpenSSL import SSL


@dataclass(frozen=True)
class ProbeResult:
    """What one handshake showed; `error` is set (and the rest empty) when there was none."""

    host: str
    port: int
    server_name: str
    leaf_sha256: str | None = None
    chain_der: list[bytes] = field(default_factory=list)
    protocol: str | None = None
    cipher: str | None = None
    hostname_matches: bool = False
    not_after: dt.datetime | None = None
    trusted: bool | None = None
    trust_error: str | None = None
    error: str | None = None
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def certificates(self) -> list[x509.Certificate]:
        """The served chain, leaf first, as parsed certificates."""
        return [x509.load_der_x509_certificate(der) for der in self.chain_der]


class ProbeTarget(NamedTuple):
    host: str
    port: int
    server_name: str


class _ProbeError(Exception):
    """A failure worth one sentence to the user."""


def probe(
    host: str,
    port: int,
    server_name: str,
    *,
    timeout: float = 5.0,
    ca_file: str | Path | None = None,
) -> ProbeResult:
    """Connect to host:port, send `server_name` as SNI and report the served certificate.

    `timeout` bounds connection and handshake together. With `ca_file` (PEM roots), `trusted`
    tells whether the served chain leads to one of them.
    """
    started = time.monotonic()
    try:
        chain, protocol, cipher = _handshake(host, port, server_name, timeout)
    except _ProbeError as exc:
        return ProbeResult(
            host, port, server_name, error=str(exc), elapsed=time.monotonic() - started
        )
    except Exception as exc:  # the contract: a result, never an exception, per target
        return ProbeResult(
            host,
            port,
            server_name,
            error=f"Unexpected error while probing {host}:{port}: {exc!r}.",
            elapsed=time.monotonic() - started,
        )
    leaf = chain[0]
    chain_der = [cert.public_bytes(serialization.Encoding.DER) for cert in chain]
    trusted, trust_error = (None, None)
    if ca_file is not None:
        trusted, trust_error = _check_trust(chain, server_name, Path(ca_file))
    return ProbeResult(
        host,
        port,
        server_name,
        leaf_sha256=hashlib.sha256(chain_der[0]).hexdigest(),
        chain_der=chain_der,
        protocol=protocol,
        cipher=cipher,
        hostname_matches=certificate_matches(leaf, server_name),
        not_after=leaf.not_valid_after_utc,
        trusted=trusted,
        trust_error=trust_error,
        elapsed=time.monotonic() - started,
    )


def probe_many(
    targets: Iterable[tuple[str, int, str]],
    *,
    concurrency: int = 16,
    timeout: float = 5.0,
    ca_file: str | Path | None = None,
) -> list[ProbeResult]:
    """Probe (host, port, server_name) targets in parallel; results in the order given."""
    targets = [ProbeTarget(*target) for target in targets]
    if not targets:
        return []
    workers = max(1, min(concurrency, len(targets)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tlsprobe") as pool:
        return list(pool.map(lambda t: probe(*t, timeout=timeout, ca_file=ca_file), targets))


# Handshake


def _handshake(
    host: str, port: int, server_name: str, timeout: float
) -> tuple[list[x509.Certificate], str, str]:
    deadline = time.monotonic() + timeout
    where = f"{host}:{port}"
    sni = _sni(server_name)
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as exc:
        raise _ProbeError(f"Could not resolve {host}: {exc.strerror}.") from exc
    except ConnectionRefusedError as exc:
        raise _ProbeError(f"Connection to {where} was refused.") from exc
    except TimeoutError as exc:
        raise _ProbeError(f"Connecting to {where} timed out after {timeout:g} s.") from exc
    except OSError as exc:
        raise _ProbeError(f"Could not connect to {where}: {exc.strerror or exc}.") from exc

    with sock, selectors.DefaultSelector() as selector:
        sock.setblocking(False)
        conn = SSL.Connection(_client_context(), sock)
        if sni is not None:
            conn.set_tlsext_host_name(sni)
        conn.set_connect_state()
        selector.register(sock, selectors.EVENT_READ)
        while True:
            try:
                conn.do_handshake()
                break
            except SSL.WantReadError:
                events = selectors.EVENT_READ
            except SSL.WantWriteError:
                events = selectors.EVENT_WRITE
            except SSL.SysCallError as exc:
                raise _ProbeError(_syscall_sentence(exc, where)) from exc
            except SSL.Error as exc:
                raise _ProbeError(f"TLS handshake with {where} failed: {_reasons(exc)}.") from exc
            selector.modify(sock, events)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                raise _ProbeError(f"No TLS handshake from {where} within {timeout:g} s.")
        chain = conn.get_peer_cert_chain(as_cryptography=True)
        if not chain:
            raise _ProbeError(f"{where} completed the handshake without a certificate.")
        protocol, cipher = conn.get_protocol_version_name(), conn.get_cipher_name()
        with contextlib.suppress(SSL.Error):
            conn.shutdown()  # best effort close_notify; the socket closes anyway
    return list(chain), protocol, cipher or ""


@functools.cache
def _client_context() -> SSL.Context:
    """One client context for every probe: building a context costs more than a handshake.

    It verifies nothing (trust is judged separately) and is only read after this point, which
    OpenSSL allows from many threads at once.
    """
    context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    context.set_verify(SSL.VERIFY_NONE)
    return context


def _sni(server_name: str) -> bytes | None:
    """The SNI bytes for `server_name`; None for an IP address, which SNI must not carry."""
    if not server_name or _ip(server_name) is not None:
        return None
    try:
        return _ascii_name(server_name).encode("ascii")
    except UnicodeError as exc:
        raise _ProbeError(f"{server_name!r} is not a valid host name.") from exc


def _syscall_sentence(exc: SSL.SysCallError, where: str) -> str:
    code = exc.args[0] if exc.args else None
    if code == -1:
        return f"{where} closed the connection during the TLS handshake."
    detail = exc.args[1] if len(exc.args) > 1 else str(exc)
    return f"Connection to {where} failed during the TLS handshake: {detail}."


def _reasons(exc: SSL.Error) -> str:
    errors = exc.args[0] if exc.args else None
    if isinstance(errors, list) and errors:
        return "; ".join(str(error[-1]) for error in errors)
    return str(exc) or exc.__class__.__name__


# Names (RFC 6125)


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return None


def _ascii_name(name: str) -> str:
    """Lowercase A-label form without the trailing dot."""
    name = name.rstrip(".").lower()
    return name if name.isascii() else name.encode("idna").decode("ascii")


def name_matches(pattern: str, hostname: str) -> bool:
    """RFC 6125 matching of one DNS SAN: `*.example.com` covers exactly one left label.

    The wildcard must be the whole left-most label and cover at least two more labels;
    partial wildcards (`f*.example.com`) match nothing, as in browsers.
    """
    try:
        pattern, hostname = _ascii_name(pattern), _ascii_name(hostname)
    except UnicodeError:
        return False
    if not pattern or not hostname:
        return False
    if "*" not in pattern:
        return pattern == hostname
    wildcard, _, suffix = pattern.partition(".")
    if wildcard != "*" or "*" in suffix or suffix.count(".") < 1:
        return False
    label, _, rest = hostname.partition(".")
    return bool(label) and label != "*" and rest == suffix


def certificate_matches(cert: x509.Certificate, server_name: str) -> bool:
    """True when one of the certificate's SANs covers `server_name` (the CN is not consulted)."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return False
    ip = _ip(server_name)
    if ip is not None:
        return ip in sans.get_values_for_type(x509.IPAddress)
    return any(
        name_matches(pattern, server_name) for pattern in sans.get_values_for_type(x509.DNSName)
    )


# Trust


def _check_trust(
    chain: list[x509.Certificate], server_name: str, ca_file: Path
) -> tuple[bool, str | None]:
    """Path validation of the served chain to the roots in `ca_file`.

    The name check is `hostname_matches`; here the chain is validated for a name the leaf
    itself claims, so a wrong name does not read as an untrusted chain.
    """
    try:
        roots = x509.load_pem_x509_certificates(ca_file.read_bytes())
    except (OSError, ValueError) as exc:
        return False, f"Could not read CA certificates from {ca_file}: {exc}."
    leaf = chain[0]
    try:
        verifier = (
            PolicyBuilder()
            .store(Store(roots))
            .build_server_verifier(_claimed_subject(leaf, server_name))
        )
        verifier.verify(leaf, chain[1:])
    except VerificationError as exc:
        return False, str(exc)
    except ValueError as exc:
        return False, f"Cannot validate this chain: {exc}."
    return True, None


def _claimed_subject(leaf: x509.Certificate, server_name: str) -> x509.GeneralName:
    ip = _ip(server_name)
    if certificate_matches(leaf, server_name):
        return x509.IPAddress(ip) if ip is not None else x509.DNSName(_ascii_name(server_name))
    try:
        sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        sans = x509.SubjectAlternativeName([])
    for pattern in sans.get_values_for_type(x509.DNSName):
        # A name the wildcard covers, so the verifier accepts the leaf's own claim.
        return x509.DNSName(pattern.replace("*", "wildcard", 1))
    addresses = sans.get_values_for_type(x509.IPAddress)
    if addresses:
        return x509.IPAddress(addresses[0])
    return x509.DNSName(_ascii_name(server_name))
