"""Rollout: one version to n bindings (one nginx, one SNI server block each, waves of 10).

Each binding has its own nginx_local target writing its server block's files, so every push
is a real write + `nginx -t` + reload, and every binding is verified by live handshakes
(three in a row showing the new leaf). Baseline in the same run: the same n pushes straight
through the driver, without the console (no rows, no audit, no verification).
"""

import tempfile
import time
import uuid
from pathlib import Path

from django.core.management import call_command

DEFAULT_N = 50
WAVE_SIZE = 10


def run(n: int) -> dict:
    from certconsole.access.models import Project
    from deployments import engine, rollout
    from deployments.bundles import bundle_for
    from deployments.drivers import get_driver
    from deployments.models import Binding, Deployment
    from deployments.tlsprobe import probe
    from inventory.importing import import_file
    from tests.deployments.nginx_site import HOST, nginx_site
    from tests.pki.factory import make_ca, make_leaf

    call_command("migrate", verbosity=0)
    names = [f"s{i}.bench.test" for i in range(n)]
    root = make_ca("Bench Root CA")
    intermediate = make_ca("Bench Intermediate CA", issuer=root)
    v1 = make_leaf(intermediate, names[0], sans=names, days=60)
    v2 = make_leaf(intermediate, names[0], sans=names, days=90)
    project = Project.objects.create(slug=f"bench-{uuid.uuid4().hex[:8]}", name="Bench rollout")
    for leaf in (v1, v2):
        data = leaf.pem + intermediate.pem + root.pem + leaf.key_pem
        result = import_file(None, project, "bench.pem", data, name="bench")
        assert result.status == "imported", result.error
    certificate = project.certificates.get()
    version1 = certificate.versions.get(sha256=v1.sha256)
    version2 = certificate.versions.get(sha256=v2.sha256)

    blocks = {f"s{i}": ([name], v1) for i, name in enumerate(names)}
    with (
        tempfile.TemporaryDirectory(prefix="bench-rollout-") as tmp,
        nginx_site(Path(tmp), blocks, [intermediate]) as site,
    ):
        bindings = []
        for i, name in enumerate(names):
            target = rollout.create_target(
                None, project, f"nginx-{name}", "nginx_local", site.options(f"s{i}")
            )
            bindings.append(
                rollout.create_binding(
                    None,
                    certificate,
                    target,
                    [name],
                    HOST,
                    site.port,
                    wave=i // WAVE_SIZE + 1,
                )
            )
        Binding.objects.filter(project=project).update(deployed_version=version1)

        # Baseline: the same pushes (of the version already served) by the bare driver.
        bundle = bundle_for(version1, include_key=True)
        start = time.perf_counter()
        for binding in bindings:
            get_driver("nginx_local", binding.target.options).push(bundle)
        baseline = time.perf_counter() - start

        start = time.perf_counter()
        deployment = rollout.start_deployment(
            None, certificate, version2, enqueue_job=False, trigger="bench"
        )
        state = engine.run_deployment(deployment.pk)
        total = time.perf_counter() - start

        served = {probe(HOST, site.port, name).leaf_sha256 for name in names}
        deployment = Deployment.objects.get(pk=deployment.pk)
        waves = _wave_seconds(deployment)
    return {
        "n": n,
        "waves": len(waves),
        "state": state,
        "all_serving_new_version": served == {v2.sha256},
        "rollout_total_s": round(total, 2),
        "per_wave_s": waves,
        "per_binding_ms": round(total / n * 1000, 1),
        "baseline_driver_push_only_s": round(baseline, 2),
        "baseline_per_push_ms": round(baseline / n * 1000, 1),
        "ratio_to_baseline": round(baseline / total, 3),
    }


def _wave_seconds(deployment) -> list[float]:
    by_wave: dict[int, list] = {}
    for step in deployment.steps.all():
        by_wave.setdefault(step.wave, []).append(step)
    return [
        round(
            (max(s.finished_at for s in steps) - min(s.started_at for s in steps)).total_seconds(),
            2,
        )
        for _, steps in sorted(by_wave.items())
    ]
