"""Discovery: handshake with a list of endpoints and import the certificates nobody registered.

Entries are "host:port", "host:port/sni" (default port 443), or a loopback range such as
"127.0.0.1/30:8443" (optionally "/sni" after the port). Only 127.0.0.0/8 and ::1 may be
scanned as a range: sweeping other networks from the console is not this tool's business, so
other servers are given one by one.
"""

import ipaddress
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives.serialization import Encoding
from django.conf import settings

from certconsole.access.permissions import require
from certconsole.audit import record
from deployments import tlsprobe
from inventory.importing import apply_plan, plan_file
from inventory.models import CertificateVersion, Source

MAX_TARGETS = 1024
LOOPBACK_V4 = ipaddress.ip_network("127.0.0.0/8")
LOOPBACK_V6 = ipaddress.ip_network("::1/128")

_RANGE = re.compile(
    r"^\[?(?P<net>[0-9A-Fa-f:.]+/\d{1,3})\]?(?::(?P<port>\d{1,5}))?(?:/(?P<sni>[^/\s]+))?$"
)
_HOST = re.compile(
    r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[^\s:/\[\]]+)(?::(?P<port>\d{1,5}))?(?:/(?P<sni>[^/\s]+))?$"
)


@dataclass(frozen=True)
class ScanTarget:
    entry: str  # the line it came from
    host: str
    port: int
    server_name: str  # sent as SNI (an IP address sends none)


def parse_entries(entries) -> list[ScanTarget]:
    """The addresses to scan; ValueError naming the first bad or forbidden entry."""
    if isinstance(entries, str):
        entries = entries.splitlines()
    targets: list[ScanTarget] = []
    for raw in entries:
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        targets += _parse_range(entry) or _parse_host(entry)
        if len(targets) > MAX_TARGETS:
            raise ValueError(f"At most {MAX_TARGETS} addresses can be scanned at once.")
    if not targets:
        raise ValueError("Give at least one entry such as example.com:443 or host:8443/name.")
    return targets


def _port(entry: str, text: str | None) -> int:
    port = int(text) if text else 443
    if not 0 < port < 65536:
        raise ValueError(f"“{entry}”: {port} is not a TCP port.")
    return port


def _parse_range(entry: str) -> list[ScanTarget]:
    match = _RANGE.match(entry)
    if match is None:
        return []
    try:
        network = ipaddress.ip_network(match["net"], strict=False)
    except ValueError:
        return []  # not a network after all: a host name with a path-like SNI part
    loopback = (network.version == 4 and network.subnet_of(LOOPBACK_V4)) or (
        network.version == 6 and network.subnet_of(LOOPBACK_V6)
    )
    if not loopback:
        raise ValueError(
            f"“{entry}”: only loopback ranges (127.0.0.0/8 and ::1) may be scanned; "
            "give other servers one by one as host:port."
        )
    if network.num_addresses > MAX_TARGETS:
        raise ValueError(f"“{entry}” has more than {MAX_TARGETS} addresses.")
    port = _port(entry, match["port"])
    hosts = list(network.hosts()) if network.num_addresses > 2 else list(network)
    return [ScanTarget(entry, str(ip), port, match["sni"] or str(ip)) for ip in hosts]


def _parse_host(entry: str) -> list[ScanTarget]:
    match = _HOST.match(entry)
    if match is None:
        raise ValueError(f"“{entry}” is not host:port, host:port/name or a loopback range.")
    host = match["host"].strip("[]").lower()
    return [ScanTarget(entry, host, _port(entry, match["port"]), match["sni"] or host)]


def discover(actor, project, entries) -> list[dict]:
    """Handshake with every entry; import served certificates the project does not know.

    One dict per address: entry, host, port, server_name, status ("known", "imported",
    "unreachable", "rejected"), sha256, subject, not_after, certificate (name), certificate_id,
    error. Imports go through the inventory's import procedure with source "discovered"
    (certificate and served chain, never a key).
    """
    require(actor, "certificate.create", project)
    targets = parse_entries(entries)
    results = tlsprobe.probe_many(
        [(t.host, t.port, t.server_name) for t in targets],
        concurrency=int(getattr(settings, "ENDPOINT_CHECK_CONCURRENCY", 32)),
        timeout=float(getattr(settings, "DISCOVERY_TIMEOUT", 3.0)),
    )
    report = []
    for target, result in zip(targets, results, strict=True):
        row = {
            "entry": target.entry,
            "host": target.host,
            "port": target.port,
            "server_name": target.server_name,
            "status": "unreachable",
            "sha256": result.leaf_sha256,
            "subject": None,
            "not_after": result.not_after.isoformat() if result.not_after else None,
            "certificate": None,
            "certificate_id": None,
            "error": result.error,
        }
        if result.ok:
            row.update(_register(actor, project, result))
        report.append(row)
    counts = {s: sum(r["status"] == s for r in report) for s in ("known", "imported")}
    record(
        actor,
        "discovery.scan",
        project,
        entries=[t.entry for t in targets][:100],
        addresses=len(targets),
        unreachable=sum(r["status"] == "unreachable" for r in report),
        **counts,
    )
    return report


def _register(actor, project, result: tlsprobe.ProbeResult) -> dict:
    """Report a served certificate the project knows; import one it does not."""
    certs = result.certificates()
    fields = {"subject": certs[0].subject.rfc4514_string()}
    known = (
        CertificateVersion.objects.filter(project=project, sha256=result.leaf_sha256)
        .select_related("certificate")
        .first()
    )
    if known is not None:
        return {
            **fields,
            "status": "known",
            "certificate": known.certificate.name,
            "certificate_id": known.certificate_id,
        }
    data = b"".join(cert.public_bytes(Encoding.PEM) for cert in certs)
    filename = f"{result.server_name or result.host} at {result.host}:{result.port}"
    plan = plan_file(actor, project, filename, data)
    imported = apply_plan(actor, project, plan, source=Source.DISCOVERED)
    if imported.status == "duplicate":
        return {**fields, "status": "known"}
    if imported.status == "rejected" or not imported.versions:
        return {**fields, "status": "rejected", "error": imported.error}
    certificate = imported.versions[0].certificate
    return {
        **fields,
        "status": "imported",
        "certificate": certificate.name,
        "certificate_id": certificate.pk,
    }
