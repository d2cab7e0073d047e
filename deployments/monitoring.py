"""Synthetic endpoint checks: what each binding and monitored endpoint really serves.

Every binding's probe address is checked with each of its SNI names, every MonitoredEndpoint
with its own name; all handshakes run concurrently (tlsprobe.probe_many, bounded pool,
per-check timeout) and each becomes an EndpointCheck row. Drift means the served leaf is not
the version the binding should serve (its deployed version, or the certificate's current one).
A manual install awaited by a rollout is confirmed here when its version is seen.

The checks are the hot path of monitoring (every binding, every 15 minutes), so the rows are
read as plain values in a few queries and prepared while the handshakes are under way.
"""

import functools
import hashlib
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from cryptography import x509
from django.conf import settings
from django.utils import timezone

from deployments import rollout, tlsprobe
from deployments.models import Binding, DeploymentStep, EndpointCheck, MonitoredEndpoint
from inventory.models import ChainLink, IssuerCertificate
from inventory.pki.chains import certifi_roots


def concurrency() -> int:
    return int(getattr(settings, "ENDPOINT_CHECK_CONCURRENCY", 32))


def check_timeout() -> float:
    return float(getattr(settings, "ENDPOINT_CHECK_TIMEOUT", 5.0))


def check_bindings(project=None) -> list[EndpointCheck]:
    """Check every binding (of project, or all) and store the results."""
    return _check(_bindings(project), [])


def check_endpoints(project=None) -> list[EndpointCheck]:
    """Check bindings and standalone monitored endpoints (of project, or all)."""
    endpoints = MonitoredEndpoint.objects.values("pk", "project_id", "host", "port", "server_name")
    if project is not None:
        endpoints = endpoints.filter(project=project)
    return _check(_bindings(project), [_Watched(**e, names=[e["server_name"]]) for e in endpoints])


@dataclass
class _Watched:
    """A binding or endpoint as the check needs it (plain values, no model instances)."""

    pk: int
    project_id: int
    host: str
    port: int
    names: list[str]
    expected_id: int | None = None
    expected_sha256: str = ""
    server_name: str = ""  # endpoints only


def _bindings(project) -> list[_Watched]:
    rows = Binding.objects.values(
        "pk",
        "project_id",
        "probe_host",
        "probe_port",
        "sni_names",
        "deployed_version_id",
        "deployed_version__sha256",
        "certificate__current_version_id",
        "certificate__current_version__sha256",
    )
    if project is not None:
        rows = rows.filter(project=project)
    return [
        _Watched(
            pk=row["pk"],
            project_id=row["project_id"],
            host=row["probe_host"],
            port=row["probe_port"],
            names=row["sni_names"],
            expected_id=row["deployed_version_id"] or row["certificate__current_version_id"],
            expected_sha256=row["deployed_version__sha256"]
            or row["certificate__current_version__sha256"]
            or "",
        )
        for row in rows
    ]


def _check(bindings: list[_Watched], endpoints: list[_Watched]) -> list[EndpointCheck]:
    wanted = [(w.host, w.port, name) for w in [*bindings, *endpoints] for name in w.names]
    unique = list(dict.fromkeys(wanted))  # a shared address and name is probed once
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="checks") as runner:
        probing = runner.submit(
            tlsprobe.probe_many, unique, concurrency=concurrency(), timeout=check_timeout()
        )
        judge = _Judge({b.expected_id for b in bindings if b.expected_id})  # meanwhile
        results = dict(zip(unique, probing.result(), strict=True))
    _confirm_manual_installs(bindings, results)

    now = timezone.now()
    checks = [
        judge.check(
            results[(b.host, b.port, name)],
            now,
            b.project_id,
            binding_id=b.pk,
            expected_id=b.expected_id,
            expected_sha256=b.expected_sha256,
        )
        for b in bindings
        for name in b.names
    ]
    checks += [
        judge.check(results[(e.host, e.port, e.server_name)], now, e.project_id, endpoint_id=e.pk)
        for e in endpoints
    ]
    return EndpointCheck.objects.bulk_create(checks)


def _confirm_manual_installs(bindings: list[_Watched], results: dict) -> None:
    """Mark awaited manual steps done once every SNI name of their binding serves the version."""
    by_id = {b.pk: b for b in bindings}
    awaiting = DeploymentStep.objects.filter(
        binding_id__in=by_id,
        state=DeploymentStep.State.AWAITING_LIVE_CHECK,
        deployment__state=rollout.State.RUNNING,
    ).select_related("deployment__version", "deployment__certificate", "binding")
    for step in awaiting:
        binding = by_id[step.binding_id]
        version = step.deployment.version
        served = {results[(binding.host, binding.port, n)].leaf_sha256 for n in binding.names}
        if served == {version.sha256}:
            rollout.mark_live(step)
            binding.expected_id, binding.expected_sha256 = version.pk, version.sha256


@functools.cache
def _certifi_subjects() -> frozenset[bytes]:
    return frozenset(root.subject.public_bytes() for root in certifi_roots())


class _Judge:
    """Turns probe results into EndpointCheck rows, with the chains and roots loaded once."""

    def __init__(self, version_ids: set[int]):
        self.intermediates: dict[int, set[str]] = defaultdict(set)
        links = ChainLink.objects.filter(
            version_id__in=version_ids, issuer__self_signed=False
        ).values_list("version_id", "issuer__sha256")
        for version_id, sha256 in links:
            self.intermediates[version_id].add(sha256)
        pool = IssuerCertificate.objects.filter(self_signed=True).values_list("der", flat=True)
        self.root_subjects = _certifi_subjects() | {
            x509.load_der_x509_certificate(bytes(der)).subject.public_bytes() for der in pool
        }
        # Many names share one certificate: judge each served chain once.
        self._chains: dict[tuple[bytes, ...], tuple[bool, frozenset[str]]] = {}

    def check(
        self,
        result: tlsprobe.ProbeResult,
        now,
        project_id: int,
        *,
        binding_id=None,
        endpoint_id=None,
        expected_id=None,
        expected_sha256="",
    ) -> EndpointCheck:
        served = result.leaf_sha256 or ""
        complete = False
        if result.ok:
            complete, sent = self._judge_chain(result)
            if complete and expected_id and served == expected_sha256:
                complete = self.intermediates[expected_id] <= sent
        return EndpointCheck(
            project_id=project_id,
            binding_id=binding_id,
            endpoint_id=endpoint_id,
            host=result.host,
            port=result.port,
            server_name=result.server_name,
            checked_at=now,
            ok=result.ok,
            error=result.error or "",
            served_sha256=served,
            expected_sha256=expected_sha256,
            drift=bool(served and expected_sha256 and served != expected_sha256),
            hostname_matches=result.hostname_matches,
            chain_complete=complete,
            protocol=result.protocol or "",
            not_after=result.not_after,
            elapsed_ms=round(result.elapsed * 1000),
        )

    def _judge_chain(self, result: tlsprobe.ProbeResult) -> tuple[bool, frozenset[str]]:
        """(chain complete, SHA-256 of the certificates sent after the leaf), cached per chain."""
        key = tuple(result.chain_der)
        if key not in self._chains:
            sent = frozenset(hashlib.sha256(der).hexdigest() for der in key[1:])
            self._chains[key] = (self.chain_complete(result), sent)
        return self._chains[key]

    def chain_complete(self, result: tlsprobe.ProbeResult) -> bool:
        """The served certificates alone lead from the leaf to a root (sent or well known)."""
        certs = [(c.subject.public_bytes(), c.issuer.public_bytes()) for c in result.certificates()]
        subject, issuer = certs[0]
        for _ in range(10):
            if issuer == subject:
                return True
            found = next((c for c in certs[1:] if c[0] == issuer), None)
            if found is None:
                return issuer in self.root_subjects
            subject, issuer = found
        return False
