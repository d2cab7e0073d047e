"""A real nginx with SNI server blocks for rollout, monitoring and discovery tests."""

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from deployments.tlsprobe import probe
from tests.pki.factory import Issued, make_ca, make_leaf
from tests.realservices import require
from tests.realservices.nginx import Nginx, ServerBlock

HOST = "127.0.0.1"


def write_pair(directory: Path, stem: str, leaf: Issued, chain: list[Issued]) -> tuple[Path, Path]:
    """Write stem.pem (leaf + chain) and stem.key; return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(leaf.pem + b"".join(c.pem for c in chain))
    key_path.write_bytes(leaf.key_pem)
    key_path.chmod(0o600)
    return cert_path, key_path


@dataclass
class Site:
    """nginx serving one server block per entry of `files` (name → (cert path, key path))."""

    nginx: Nginx
    files: dict[str, tuple[Path, Path]] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return self.nginx.port

    def options(self, block: str, **overrides) -> dict:
        """nginx_local target options writing the files of `block`."""
        cert_path, key_path = self.files[block]
        return {
            "fullchain_path": str(cert_path),
            "key_path": str(key_path),
            "test_command": self.nginx.test_command(),
            "reload_command": self.nginx.reload_command(),
            **overrides,
        }

    def served(self, name: str, timeout: float = 5.0) -> str | None:
        """The leaf SHA-256 served for name once three handshakes in a row agree."""
        deadline = time.monotonic() + timeout
        last, streak = None, 0
        while time.monotonic() < deadline:
            now = probe(HOST, self.port, name, timeout=2).leaf_sha256
            streak = streak + 1 if now == last else 1
            last = now
            if streak == 3:
                break
            time.sleep(0.02)
        return last


@contextlib.contextmanager
def nginx_site(directory: Path, blocks: dict[str, tuple], chain: list[Issued]) -> Iterator[Site]:
    """Start nginx with a server block per entry (the first is the default), files in directory.

    blocks: {"a": (["a.test", "www.a.test"], leaf)}; every leaf is served with `chain` after it
    unless its entry has a chain of its own as a third item.
    """
    files = {
        stem: write_pair(directory / "certs", stem, entry[1], entry[2] if len(entry) > 2 else chain)
        for stem, entry in blocks.items()
    }
    servers = [
        ServerBlock(entry[0], *files[stem], default=index == 0)
        for index, (stem, entry) in enumerate(blocks.items())
    ]
    with require(Nginx, directory / "nginx", servers) as nginx:
        yield Site(nginx, files)


# Inventory side: a CA, versions of one certificate, targets and bindings on the site.

NAMES = ["a.test", "www.a.test"]


def make_pki() -> SimpleNamespace:
    root = make_ca("Test Root CA")
    return SimpleNamespace(root=root, intermediate=make_ca("Test Intermediate CA", issuer=root))


def new_leaf(pki, names=NAMES, days=90) -> Issued:
    return make_leaf(pki.intermediate, names[0], sans=list(names), days=days)


def import_versions(import_pem, pki, names=NAMES) -> SimpleNamespace:
    """v1 and a newer v2 of one certificate for names, imported with chain and key."""
    leaves = [new_leaf(pki, names, days=60), new_leaf(pki, names, days=90)]
    for leaf in leaves:
        certificate = import_pem(leaf.pem + pki.intermediate.pem + pki.root.pem + leaf.key_pem)
    found = {v.sha256: v for v in certificate.versions.all()}
    return SimpleNamespace(
        certificate=certificate,
        leaves=leaves,
        v1=found[leaves[0].sha256],
        v2=found[leaves[1].sha256],
    )


def bind(site, versions, block="a", names=NAMES, *, port=None, wave=1, deployed=True, **options):
    """An nginx_local target writing `block`'s files and a binding for names on it.

    deployed=True records v1 as deployed: what nginx serves now, as if a rollout had put it there.
    """
    from deployments import rollout
    from deployments.models import Binding

    target = rollout.create_target(
        None,
        versions.certificate.project,
        f"nginx-{block}-{wave}-{names[0]}",
        "nginx_local",
        site.options(block, **options),
    )
    binding = rollout.create_binding(
        None, versions.certificate, target, names, HOST, port or site.port, wave=wave
    )
    if deployed:
        Binding.objects.filter(pk=binding.pk).update(deployed_version=versions.v1)
        binding.refresh_from_db()
    return binding
