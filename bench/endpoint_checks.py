"""Endpoint checks per second through check_endpoints(), next to raw `ssl` handshakes.

One nginx serving n SNI names (server blocks of 10 names, one certificate each), one binding
per name. The console's path: probe_many (bounded pool) + judging + EndpointCheck rows. The
baseline in the same run: Python's `ssl` doing plain handshakes (wrap_socket with SNI, no
verification, one shared context) to the same names with the same concurrency; and the bare
tlsprobe.probe_many, to tell the console's own cost (rows, judging) from the handshakes'.
Rates are medians over interleaved rounds.
"""

import socket
import ssl
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.conf import settings
from django.core.management import call_command

DEFAULT_N = 200
NAMES_PER_BLOCK = 10
ROUNDS = 5


def run(n: int) -> dict:
    from certconsole.access.models import Project
    from deployments import monitoring, rollout, tlsprobe
    from inventory.importing import import_file
    from tests.deployments.nginx_site import HOST, nginx_site
    from tests.pki.factory import make_ca, make_leaf

    call_command("migrate", verbosity=0)
    concurrency = monitoring.concurrency()
    names = [f"e{i}.bench.test" for i in range(n)]
    groups = [names[i : i + NAMES_PER_BLOCK] for i in range(0, n, NAMES_PER_BLOCK)]
    root = make_ca("Bench Root CA")
    intermediate = make_ca("Bench Intermediate CA", issuer=root)
    project = Project.objects.create(slug=f"bench-{uuid.uuid4().hex[:8]}", name="Bench checks")
    blocks = {}
    certificates = []
    for index, group in enumerate(groups):
        leaf = make_leaf(intermediate, group[0], sans=group)
        blocks[f"b{index}"] = (group, leaf)
        data = leaf.pem + intermediate.pem + root.pem + leaf.key_pem
        result = import_file(None, project, f"{index}.pem", data, name=f"bench-{index}")
        assert result.status == "imported", result.error
        certificates.append(result.versions[0].certificate)

    with (
        tempfile.TemporaryDirectory(prefix="bench-checks-") as tmp,
        nginx_site(Path(tmp), blocks, [intermediate]) as site,
    ):
        target = rollout.create_target(None, project, "by hand", "manual", {})
        for certificate, group in zip(certificates, groups, strict=True):
            for name in group:
                rollout.create_binding(None, certificate, target, [name], HOST, site.port)
        wanted = [(HOST, site.port, name) for name in names]
        _raw_handshakes(wanted, concurrency)  # warm-up: nginx workers, sockets, caches
        console, probes, raw = [], [], []
        for _ in range(ROUNDS):  # interleaved, so machine noise hits all alike
            start = time.perf_counter()
            checks = monitoring.check_endpoints(project)
            console.append(time.perf_counter() - start)
            start = time.perf_counter()
            tlsprobe.probe_many(wanted, concurrency=concurrency, timeout=5)
            probes.append(time.perf_counter() - start)
            start = time.perf_counter()
            raw_ok = _raw_handshakes(wanted, concurrency)
            raw.append(time.perf_counter() - start)
    console_rate, probe_rate, raw_rate = (n / _median(t) for t in (console, probes, raw))
    return {
        "n": n,
        "concurrency": concurrency,
        "timeout_s": monitoring.check_timeout(),
        "rounds": ROUNDS,
        "checks_ok": sum(c.ok for c in checks),
        "checks_drift": sum(c.drift for c in checks),
        "checks_chain_complete": sum(c.chain_complete for c in checks),
        "raw_ok": raw_ok,
        "console_checks_per_s": round(console_rate, 1),
        "tlsprobe_probe_many_per_s": round(probe_rate, 1),
        "raw_ssl_handshakes_per_s": round(raw_rate, 1),
        "ratio_to_raw": round(console_rate / raw_rate, 3),
        "ratio_probe_many_to_raw": round(probe_rate / raw_rate, 3),
        "ratio_to_probe_many": round(console_rate / probe_rate, 3),
        "target_ratio": 0.8,
        "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
    }


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def _raw_handshakes(wanted: list[tuple[str, int, str]], concurrency: int) -> int:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    def handshake(target) -> bool:
        host, port, name = target
        with (
            socket.create_connection((host, port), timeout=5) as sock,
            context.wrap_socket(sock, server_hostname=name) as tls,
        ):
            return tls.getpeercert(binary_form=True) is not None

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return sum(pool.map(handshake, wanted))
