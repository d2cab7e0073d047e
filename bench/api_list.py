"""The REST API at n certificates: list p50/p95 (filter, search), and bundle fetch under wrk.

The list is measured like bench/certificate_list.py (same seeded rows, server-side time
through Django's test client with a Bearer token). The fetch is measured on loopback against
gunicorn with `wrk` (Debian package): ETag hits (If-None-Match → 304), the full bundle (200,
audited) and /healthz as the baseline of the same server. Errors must be zero.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from django.core.management import call_command
from django.db import connection
from django.test import Client

from bench.certificate_list import _populate, _summary, _time

DEFAULT_N = 100_000
REQUESTS = 40
ROOT = Path(__file__).resolve().parent.parent
WRK_SECONDS = int(os.environ.get("BENCH_WRK_SECONDS", "10"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _fetch_certificate():
    """A certificate with chain and key, in a project of its own (the list's project stays n)."""
    from certconsole.access.models import Project
    from inventory.importing import import_file
    from tests.pki.factory import make_chain

    project, _ = Project.objects.get_or_create(slug="bench-fetch", defaults={"name": "Fetch"})
    chain = make_chain()
    result = import_file(
        None, project, "fetch.pem", chain.leaf.pem + chain.intermediate.pem + chain.leaf.key_pem
    )
    return result.versions[0].certificate  # a fresh chain: always a new version


def _wrk(url: str, headers: dict, connections: int, seconds: int) -> dict:
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    p99 = re.search(r"99%\s+([\d.]+\w+)", out)
    return {
        "requests_per_s": round(rps),
        "requests": total,
        "errors": (int(bad.group(1)) if bad else 0) + (sum(map(int, sock.groups())) if sock else 0),
        "latency_p99": p99.group(1) if p99 else None,
        "connections": connections,
    }


def _serve(port: int, workers: int) -> subprocess.Popen:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings"}
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    server = subprocess.Popen(
        [
            gunicorn,
            "certconsole.wsgi",
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            str(workers),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise RuntimeError("gunicorn did not start")


def _fetch_bench() -> dict:
    from api.fetch import etag
    from api.models import FetchToken

    if not shutil.which("wrk"):
        return {"skipped": "wrk is not installed (apt-get install wrk)"}
    certificate = _fetch_certificate()
    _, secret = FetchToken.issue(None, certificate, name="bench")
    version = certificate.current_version
    tag = etag(version.sha256, version.private_key_id, "pem")
    workers = min(8, os.cpu_count() or 2)
    port = _free_port()
    server = _serve(port, workers)
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {secret}"}
    try:
        results = {
            "gunicorn_workers": workers,
            "wrk_seconds": WRK_SECONDS,
            "baseline_healthz": _wrk(f"{base}/healthz", {}, 32, WRK_SECONDS),
            "fetch_etag_304": _wrk(
                f"{base}/api/v1/fetch/", {**auth, "If-None-Match": tag}, 32, WRK_SECONDS
            ),
            # Each 200 decrypts the key and appends to the audit chain (serialised writes).
            "fetch_full_200": _wrk(f"{base}/api/v1/fetch/", auth, 4, max(3, WRK_SECONDS // 3)),
        }
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    return results


def run(n: int) -> dict:
    from django.contrib.auth import get_user_model

    from api.models import ApiToken
    from certconsole.access.models import Membership, Project
    from inventory.models import Certificate

    call_command("migrate", verbosity=0)
    project, _ = Project.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    user, _ = get_user_model().objects.get_or_create(username="bench-viewer")
    Membership.objects.get_or_create(user=user, project=project, role="viewer")
    start = time.perf_counter()
    _populate(project, n)
    populate_s = time.perf_counter() - start
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE inventory_certificate")
            cursor.execute("VACUUM ANALYZE inventory_certificatename")
    _, secret = ApiToken.issue(None, user, project, name="bench", rate_limit="6000/min")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")

    def page(params):
        def get():
            response = client.get("/api/v1/certificates/", params)
            assert response.status_code == 200, response.content[:300]
            assert b'"results"' in response.content

        return get

    def baseline():
        list(
            Certificate.objects.filter(project=project)
            .order_by("not_after", "pk")
            .only("id", "name", "primary_domain", "not_after")[:50]
        )

    cases = {
        "baseline_orm_page": baseline,
        "default": page({}),
        "filter_status_expiring": page({"status": "expiring"}),
        "filter_label_env_prod": page({"label": "env=prod"}),
        "search_wildcard": page({"q": "shop.zone17.example.com"}),
        "search_prefix": page({"q": "host4242"}),
        "search_and_filter": page({"q": "zone17.example.com", "key_type": "EC-P256"}),
    }
    results = {name: _summary(*_time(fn, REQUESTS)) for name, fn in cases.items()}
    return {
        "n": n,
        "database": connection.vendor,
        "requests_per_case": REQUESTS,
        "populate_s": round(populate_s, 1),
        **results,
        "fetch": _fetch_bench(),
    }
