"""Endpoint checks by real handshakes: drift, failures, chains, manual installs confirmed."""

from datetime import timedelta

import pytest
from django.utils import timezone

from deployments import engine, jobs, monitoring, rollout
from deployments.models import Deployment, DeploymentStep, EndpointCheck, MonitoredEndpoint
from tests.deployments.nginx_site import (
    HOST,
    NAMES,
    bind,
    import_versions,
    make_pki,
    new_leaf,
    nginx_site,
    write_pair,
)
from tests.realservices.ports import free_port


@pytest.fixture
def pki():
    return make_pki()


@pytest.fixture
def versions(pki, import_pem):
    return import_versions(import_pem, pki)


@pytest.fixture
def site(tmp_path, pki, versions):
    """v1 for a.test + www.a.test; w.test with its chain; bare.test without its intermediate."""
    blocks = {
        "a": (NAMES, versions.leaves[0]),
        "w": (["w.test"], new_leaf(pki, ["w.test"])),
        "bare": (["bare.test"], new_leaf(pki, ["bare.test"]), []),
    }
    with nginx_site(tmp_path, blocks, [pki.intermediate]) as site:
        yield site


def test_a_binding_serving_another_version_than_bound_is_drift(site, versions):
    binding = bind(site, versions, deployed=False)
    binding.deployed_version = versions.v2  # bound to v2, but nginx still serves v1
    binding.save()

    checks = monitoring.check_bindings()

    assert sorted(c.server_name for c in checks) == NAMES
    for check in checks:
        assert check.pk is not None and check.binding == binding
        assert (check.ok, check.drift) == (True, True)
        assert check.served_sha256 == versions.v1.sha256
        assert check.expected_sha256 == versions.v2.sha256
        assert check.hostname_matches and check.chain_complete
        assert check.protocol.startswith("TLSv1.")
        assert check.not_after == versions.v1.not_after
        assert (check.host, check.port) == (HOST, site.port)


def test_a_binding_serving_its_version_passes_and_a_closed_port_fails(site, versions):
    serving = bind(site, versions)
    closed = bind(site, versions, "w", ["a.test"], port=free_port())

    checks = {c.binding_id: c for c in monitoring.check_endpoints() if c.server_name == "a.test"}

    good, bad = checks[serving.pk], checks[closed.pk]
    assert (good.ok, good.drift, good.error) == (True, False, "")
    assert (bad.ok, bad.drift, bad.served_sha256) == (False, False, "")
    assert "refused" in bad.error
    assert EndpointCheck.objects.count() == 3  # www.a.test too


def test_monitored_endpoints_report_names_and_incomplete_chains(site, versions):
    project = versions.certificate.project
    for name in ("w.test", "bare.test", "nope.test"):
        MonitoredEndpoint.objects.create(
            project=project, host=HOST, port=site.port, server_name=name
        )

    checks = {c.server_name: c for c in monitoring.check_endpoints(project)}

    assert checks["w.test"].chain_complete and checks["w.test"].hostname_matches
    assert not checks["bare.test"].chain_complete  # the intermediate is not sent
    assert checks["bare.test"].hostname_matches
    nope = checks["nope.test"]  # the default server answers with a.test's certificate
    assert nope.ok and not nope.hostname_matches and not nope.drift
    assert all(c.endpoint is not None and c.binding is None for c in checks.values())


def test_a_manual_install_is_confirmed_when_the_live_check_sees_it(site, versions, pki):
    project = versions.certificate.project
    target = rollout.create_target(None, project, "by hand", "manual", {"fullchain_path": "/x"})
    binding = rollout.create_binding(None, versions.certificate, target, NAMES, HOST, site.port)
    deployment = rollout.start_deployment(
        None, versions.certificate, versions.v2, enqueue_job=False
    )
    assert engine.run_deployment(deployment.pk) == Deployment.State.RUNNING
    step = deployment.steps.get()
    assert step.state == DeploymentStep.State.AWAITING_LIVE_CHECK
    assert "Install fullchain.pem" in step.summary

    monitoring.check_bindings()  # still the old certificate
    step.refresh_from_db()
    assert step.state == DeploymentStep.State.AWAITING_LIVE_CHECK

    # The person installs the files and reloads nginx.
    write_pair(site.files["a"][0].parent, "a", versions.leaves[1], [pki.intermediate])
    site.nginx.reload()
    checks = monitoring.check_bindings()

    step.refresh_from_db()
    deployment.refresh_from_db()
    binding.refresh_from_db()
    assert step.state == DeploymentStep.State.DONE
    assert deployment.state == Deployment.State.SUCCEEDED
    assert binding.deployed_version == versions.v2
    assert not any(c.drift for c in checks)


def test_the_scheduled_job_checks_prunes_old_results_and_revives_stalled_rollouts(
    site, versions, settings
):
    binding = bind(site, versions)
    old = EndpointCheck.objects.create(
        project=binding.project,
        binding=binding,
        host=HOST,
        port=site.port,
        server_name="a.test",
        checked_at=timezone.now() - timedelta(days=400),
    )
    settings.ENDPOINT_CHECK_RETENTION_DAYS = 90

    summary = jobs.check_endpoints_job()

    assert summary == {
        "checks": 2,
        "failed": 0,
        "drift": 0,
        "resumed_deployments": [],
        "pruned": 1,
    }
    assert not EndpointCheck.objects.filter(pk=old.pk).exists()
