"""Fixtures for the orders tests: a real Pebble (+ challtestsrv or BIND9), the console's own
HTTP-01 endpoint on the port Pebble's VA connects to, an ACME account, and a driver that plays
the worker (the same `issuance.advance` the RQ job calls)."""

import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from cryptography import x509
from django.core.handlers.wsgi import WSGIHandler
from django.utils import timezone

from inventory.models import IssuerCertificate
from inventory.pki.parse import describe
from orders import issuance
from orders.models import AcmeAccount, Order
from tests.realservices import require
from tests.realservices.named import Bind9
from tests.realservices.pebble import Pebble


@pytest.fixture
def acme_settings(settings):
    """Fast polling and retries, and the console answering HTTP-01 for any ordered host."""
    settings.ACME_POLL_INTERVAL = 0.05
    settings.ACME_POLL_MAX_INTERVAL = 0.2
    settings.ACME_RETRY_BASE = 0.1
    settings.ACME_RETRY_MAX = 1.0
    settings.ACME_STEP_TIMEOUT = 30.0
    settings.ALLOWED_HOSTS = ["*"]
    return settings


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class _ThreadingWSGIServer(WSGIServer):
    daemon_threads = True

    def process_request(self, request, client_address):
        thread = threading.Thread(target=self._handle, args=(request, client_address), daemon=True)
        thread.start()

    def _handle(self, request, client_address):
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)


def serve_console(port: int):
    """The Django app on 127.0.0.1:port in a thread (Pebble's VA fetches HTTP-01 here)."""
    server = make_server(
        "127.0.0.1",
        port,
        WSGIHandler(),
        server_class=_ThreadingWSGIServer,
        handler_class=_QuietHandler,
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    return server


@pytest.fixture
def pebble(tmp_path, acme_settings):
    with require(Pebble, tmp_path / "pebble") as ca:
        acme_settings.ACME_DNS_NAMESERVERS = [("127.0.0.1", ca.dns_port)]
        yield ca


@pytest.fixture
def console_http(pebble):
    server = serve_console(pebble.http01_port)
    yield server
    server.shutdown()
    server.server_close()


def trust_pebble_root(ca: Pebble) -> None:
    """Pebble makes a new root at every start: put it in the issuer pool for chain building."""
    root = x509.load_pem_x509_certificate(ca.roots())
    IssuerCertificate.from_x509(root, describe(root))


def make_account(project, ca: Pebble, name: str = "pebble", **extra) -> AcmeAccount:
    trust_pebble_root(ca)
    return AcmeAccount.register(
        None,
        project,
        name=name,
        directory_url=ca.directory_url,
        ca_bundle=ca.ca_bundle_path.read_text(),
        email="ops@example.com",
        agree_tos=True,
        **extra,
    )


@pytest.fixture
def account(project, pebble):
    return make_account(project, pebble)


def drive(order: Order, timeout: float = 60.0, until=None, max_steps=None) -> Order:
    """Play the worker: run every due step until the order ends (or `until(order)` holds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        order.refresh_from_db()
        if order.is_final or (until is not None and until(order)):
            return order
        due = order.next_attempt_at is not None and order.next_attempt_at <= timezone.now()
        if order.state in Order.WORKER_STATES and due:
            issuance.advance(order.pk, max_steps=max_steps)
        else:
            time.sleep(0.05)
    order.refresh_from_db()
    raise AssertionError(f"order #{order.pk} still {order.state} after {timeout} s")


@pytest.fixture
def bind9(tmp_path):
    with require(Bind9, tmp_path / "bind", zone="test.") as server:
        yield server


@pytest.fixture
def pebble_on_bind(tmp_path, bind9, acme_settings):
    with require(Pebble, tmp_path / "pebble", dns_server=bind9.nameserver) as ca:
        acme_settings.ACME_DNS_NAMESERVERS = [("127.0.0.1", bind9.port)]
        yield ca


@pytest.fixture
def offline_account(project):
    """An ACME account row that never reaches a CA (for pages and permissions)."""
    from certconsole import keyring
    from orders.acme.client import generate_account_key

    return AcmeAccount.objects.create(
        project=project,
        name="offline",
        directory_url="https://127.0.0.1:9/dir",
        account_uri="https://127.0.0.1:9/acct/1",
        encrypted_account_key=keyring.encrypt(generate_account_key()),
    )
