"""ACME orders: n HTTP-01 certificates from a real Pebble (validation sleep off).

Measured in one run, at the same poll interval (BENCH_ACME_POLL_INTERVAL, default 1.0 s,
the `acme` library's own):
- raw: a minimal script on the `acme` library (new order, answer, poll_and_finalize), in turn;
- console: the product's path — `issuance.create_order`, then real `manage.py rqworker acme`
  processes (1, 2 and 4) running `orders.jobs.advance_order`, the console itself serving
  HTTP-01 from its Challenge rows;
- certbot: `certbot certonly --standalone` in turn (at most 10), when installed (on PATH or
  BENCH_CERTBOT=path).
Per-order wall time and throughput for each; the aims are console ≤ 1.3 × raw per order with
one worker, and 4 workers ≥ 5 × certbot's throughput.
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.db import transaction

from tests.realservices.http01 import Http01Responder

DEFAULT_N = 50
WORKER_COUNTS = (1, 2, 4)
CERTBOT_MAX = 10  # certbot starts a Python process per certificate: a sample is enough
ROOT = Path(__file__).resolve().parent.parent


def run(n: int) -> dict:
    from tests.realservices.pebble import Pebble
    from tests.realservices.redis import RedisServer

    call_command("migrate", verbosity=0)
    interval = float(os.environ.get("BENCH_ACME_POLL_INTERVAL", "1.0"))
    with tempfile.TemporaryDirectory(prefix="bench-acme-") as tmp:
        tmp_path = Path(tmp)
        with (
            RedisServer(tmp_path / "redis") as redis_server,
            Pebble(tmp_path / "pebble") as pebble,
        ):
            raw = _raw(pebble, n)
            certbot = _certbot(pebble, min(n, CERTBOT_MAX), tmp_path / "certbot")
            console = _console(pebble, redis_server, n, interval, tmp_path)
    result = {"n": n, "poll_interval_s": interval, "raw": raw, "certbot": certbot}
    result["console"] = console
    one = console.get("workers_1", {}).get("per_order_s")
    four = console.get("workers_4", {}).get("throughput_per_s")
    result["ratio_console_1_worker_to_raw"] = round(one / raw["per_order_s"], 3) if one else None
    result["target_ratio_to_raw"] = 1.3
    if certbot.get("throughput_per_s") and four:
        result["ratio_4_workers_to_certbot"] = round(four / certbot["throughput_per_s"], 2)
    result["target_ratio_to_certbot"] = 5.0
    return result


def _summary(durations: list[float], wall: float) -> dict:
    return {
        "orders": len(durations),
        "wall_s": round(wall, 2),
        "per_order_s": round(wall / len(durations), 3),
        "order_p50_s": round(statistics.median(durations), 3),
        "throughput_per_s": round(len(durations) / wall, 3),
    }


# --- raw acme script ----------------------------------------------------------------------


def _raw(pebble, n: int) -> dict:
    import josepy as jose
    from acme import challenges, crypto_util, messages
    from acme import client as acme_client
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = jose.JWKEC(key=ec.generate_private_key(ec.SECP256R1()))
    net = acme_client.ClientNetwork(key, alg=jose.ES256, verify_ssl=str(pebble.ca_bundle_path))
    directory = messages.Directory.from_json(net.get(pebble.directory_url).json())
    acme = acme_client.ClientV2(directory, net=net)
    acme.new_account(messages.NewRegistration.from_data(terms_of_service_agreed=True))
    responder = Http01Responder(pebble.http01_port)
    durations = []
    start = time.perf_counter()
    try:
        for i in range(n):
            began = time.perf_counter()
            cert_key = ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            order = acme.new_order(crypto_util.make_csr(cert_key, [f"raw-{i}.example.com"]))
            for authz in order.authorizations:
                chall = next(
                    c for c in authz.body.challenges if isinstance(c.chall, challenges.HTTP01)
                )
                response, validation = chall.response_and_validation(key)
                responder.tokens[chall.chall.encode("token")] = validation
                acme.answer_challenge(chall, response)
            acme.poll_and_finalize(order)
            durations.append(time.perf_counter() - began)
    finally:
        responder.close()
    return _summary(durations, time.perf_counter() - start)


# --- certbot ------------------------------------------------------------------------------


def _certbot(pebble, n: int, directory: Path) -> dict:
    certbot = os.environ.get("BENCH_CERTBOT") or shutil.which("certbot")
    if certbot is None:
        return {"skipped": "certbot is not installed (pip install certbot, or set BENCH_CERTBOT)"}
    env = {**os.environ, "REQUESTS_CA_BUNDLE": str(pebble.ca_bundle_path)}
    base = [certbot, "certonly", "--standalone", "--non-interactive", "--agree-tos"]
    base += ["--register-unsafely-without-email", "--server", pebble.directory_url]
    base += [f"--http-01-port={pebble.http01_port}", "--key-type=ecdsa"]
    base += [f"--config-dir={directory}/config", f"--work-dir={directory}/work"]
    base += [f"--logs-dir={directory}/logs"]
    durations = []
    start = time.perf_counter()
    for i in range(n):
        began = time.perf_counter()
        done = subprocess.run(
            [*base, "-d", f"certbot-{i}.example.com"], env=env, capture_output=True, check=False
        )
        if done.returncode != 0:
            return {"error": done.stderr.decode(errors="replace")[-500:]}
        durations.append(time.perf_counter() - began)
    return _summary(durations, time.perf_counter() - start)


# --- the console --------------------------------------------------------------------------


def _serve_console(port: int):
    """The console's WSGI app on the port Pebble's VA fetches HTTP-01 from."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from django.core.handlers.wsgi import WSGIHandler

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    server = make_server("127.0.0.1", port, WSGIHandler(), server_class=Server, handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _worker_settings(directory: Path, redis_url: str, interval: float) -> str:
    """A settings module for the worker processes: bench settings + this run's Redis/polling."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "bench_acme_worker_settings.py").write_text(
        "from bench.settings import *  # noqa\n"
        f"REDIS_URL = {redis_url!r}\n"
        "RQ_QUEUES = {q: {'URL': REDIS_URL, 'DEFAULT_TIMEOUT': 600} for q in RQ_QUEUE_NAMES}\n"
        f"ACME_POLL_INTERVAL = {interval!r}\n"
        f"ACME_POLL_MAX_INTERVAL = {max(interval, 1.0)!r}\n"
        "ACME_RETRY_BASE = 1.0\n"
        "ALLOWED_HOSTS = ['*']\n"
    )
    return "bench_acme_worker_settings"


def _console(pebble, redis_server, n: int, interval: float, tmp_path: Path) -> dict:
    import redis
    from cryptography import x509
    from rq import Worker

    from certconsole.access.models import Project
    from inventory.models import IssuerCertificate
    from inventory.pki.parse import describe
    from orders import issuance, jobs
    from orders.models import AcmeAccount, Order

    settings.ALLOWED_HOSTS = ["*"]
    settings.REDIS_URL = redis_server.url
    settings.RQ_QUEUES = {name: {"URL": redis_server.url} for name in settings.RQ_QUEUE_NAMES}
    settings.ACME_POLL_INTERVAL = interval
    module = _worker_settings(tmp_path / "settings", redis_server.url, interval)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": module,
        "PYTHONPATH": os.pathsep.join([str(tmp_path / "settings"), str(ROOT)]),
    }
    root = x509.load_pem_x509_certificate(pebble.roots())
    IssuerCertificate.from_x509(root, describe(root))
    project, _ = Project.objects.get_or_create(slug="bench-acme", defaults={"name": "Bench ACME"})
    run_id = uuid.uuid4().hex[:8]
    account = AcmeAccount.register(
        None,
        project,
        name=f"pebble-{run_id}",
        directory_url=pebble.directory_url,
        ca_bundle=pebble.ca_bundle_path.read_text(),
        agree_tos=True,
    )
    connection = redis.Redis.from_url(redis_server.url)
    server = _serve_console(pebble.http01_port)
    results = {}
    try:
        for count in WORKER_COUNTS:
            workers = [
                subprocess.Popen(
                    [sys.executable, str(ROOT / "manage.py"), "rqworker", "acme"],
                    env=env,
                    cwd=ROOT,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for _ in range(count)
            ]
            try:
                deadline = time.monotonic() + 60
                while len(Worker.all(connection=connection)) < count:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the RQ workers did not start")
                    time.sleep(0.1)
                with transaction.atomic():
                    orders = [
                        issuance.create_order(
                            None,
                            project,
                            account=account,
                            domains=[f"w{count}-{i}-{run_id}.example.com"],
                        )
                        for i in range(n)
                    ]
                    start = time.perf_counter()
                ids = [o.pk for o in orders]
                wall = _wait(ids, start, jobs)
                results[f"workers_{count}"] = _console_summary(ids, wall, Order)
            finally:
                _stop(workers)
                connection.delete(*(connection.keys("rq:worker*") or [b"none"]))
    finally:
        server.shutdown()
        server.server_close()
    return results


def _stop(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        worker.terminate()
    for worker in workers:
        try:
            worker.wait(5)
        except subprocess.TimeoutExpired:  # an idle worker may sit in a blocking dequeue
            worker.kill()
            worker.wait(5)


def _wait(ids: list[int], start: float, jobs, timeout: float = 900) -> float:
    from orders.models import Order

    last_sweep = time.monotonic()
    while time.monotonic() - start < timeout:
        left = Order.objects.filter(pk__in=ids).exclude(state__in=Order.FINAL_STATES).count()
        if not left:
            return time.perf_counter() - start
        if time.monotonic() - last_sweep > 10:
            jobs.sweep_orders()
            last_sweep = time.monotonic()
        time.sleep(0.05)
    raise RuntimeError(f"orders not done after {timeout} s")


def _console_summary(ids: list[int], wall: float, Order) -> dict:
    orders = Order.objects.filter(pk__in=ids).prefetch_related("events")
    durations = []
    states: dict[str, int] = {}
    for order in orders:
        states[order.state] = states.get(order.state, 0) + 1
        events = list(order.events.all())
        durations.append((events[-1].at - events[0].at).total_seconds())
    summary = _summary(durations, wall)
    summary["states"] = states
    return summary
