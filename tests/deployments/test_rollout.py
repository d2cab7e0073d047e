"""Rollouts against a real nginx: pushed, verified by live handshakes, rolled back on failure."""

from datetime import timedelta
from types import SimpleNamespace

import django_rq
import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone
from rq import SimpleWorker

from certconsole.audit.models import AuditEvent
from deployments import engine, rollout, signals
from deployments.bundles import bundle_for
from deployments.drivers import DriverError
from deployments.models import Binding, Deployment, DeploymentStep
from deployments.tlsprobe import probe
from tests.deployments.nginx_site import (
    HOST,
    NAMES,
    bind,
    import_versions,
    make_pki,
    new_leaf,
    nginx_site,
)
from tests.realservices import require
from tests.realservices.haproxy import HAProxy
from tests.realservices.ports import free_port

State, Step = Deployment.State, DeploymentStep.State


@pytest.fixture(autouse=True)
def _verify_timeout(settings):
    """Generous: a verification that passes ends as soon as the new certificate is seen."""
    settings.DEPLOY_VERIFY_TIMEOUT = 10


@pytest.fixture
def failing_verify(settings):
    """A verification expected to fail waits for the whole timeout: keep that short."""
    settings.DEPLOY_VERIFY_TIMEOUT = 2.5


@pytest.fixture
def pki():
    return make_pki()


@pytest.fixture
def versions(pki, import_pem):
    return import_versions(import_pem, pki)


@pytest.fixture
def site(tmp_path, pki, versions):
    """nginx serving v1 for a.test + www.a.test (default) and another certificate for w.test."""
    blocks = {"a": (NAMES, versions.leaves[0]), "w": (["w.test"], new_leaf(pki, ["w.test"]))}
    with nginx_site(tmp_path, blocks, [pki.intermediate]) as site:
        yield site


def deploy(versions, version, **options) -> Deployment:
    deployment = rollout.start_deployment(
        None, versions.certificate, version, enqueue_job=False, **options
    )
    engine.run_deployment(deployment.pk)
    deployment.refresh_from_db()
    return deployment


def states(deployment) -> list[str]:
    return list(deployment.steps.order_by("wave", "id").values_list("state", flat=True))


# Success


def test_a_new_version_is_pushed_verified_on_every_sni_name_and_recorded(site, versions):
    binding = bind(site, versions)

    deployment = deploy(versions, versions.v2, reason="renewed")

    assert deployment.state == State.SUCCEEDED, deployment.last_error
    assert states(deployment) == [Step.DONE]
    step = deployment.steps.get()
    assert step.previous_version == versions.v1
    assert "nginx reloaded" in step.summary
    binding.refresh_from_db()
    assert binding.deployed_version == versions.v2 and binding.deployed_at is not None
    assert site.served("a.test") == versions.v2.sha256
    assert site.served("www.a.test") == versions.v2.sha256
    assert site.served("w.test") != versions.v2.sha256
    actions = list(AuditEvent.objects.values_list("action", flat=True))
    assert {"target.create", "binding.create", "deployment.start", "deployment.finish"} <= set(
        actions
    )
    finish = AuditEvent.objects.get(action="deployment.finish")
    assert finish.detail["state"] == "succeeded" and finish.detail["version"] == versions.v2.sha256


def test_the_bundle_is_the_full_chain_without_the_root_and_the_key_only_when_asked(versions, pki):
    bundle = bundle_for(versions.v2, include_key=False)
    assert bundle.fullchain_pem == versions.leaves[1].pem + pki.intermediate.pem
    assert bundle.key_pem is None and bundle.sha256 == versions.v2.sha256
    assert b"PRIVATE KEY" in bundle_for(versions.v2, include_key=True).key_pem


def test_a_version_without_a_key_cannot_go_to_a_target_that_needs_one(pki, import_pem):
    leaf = new_leaf(pki)
    certificate = import_pem(leaf.pem + pki.intermediate.pem)
    with pytest.raises(DriverError, match="no private key") as raised:
        bundle_for(certificate.current_version, include_key=True)
    assert raised.value.permanent


# Failures


def test_a_failing_nginx_test_keeps_the_old_certificate_and_fails_the_rollout(
    site, versions, tmp_path
):
    broken = tmp_path / "broken.conf"
    broken.write_text("events {}\nhttp { server { listen nonsense; } }\n")
    test_command = [site.nginx.binary, "-p", f"{tmp_path}/", "-c", str(broken), "-t"]
    binding = bind(site, versions, test_command=test_command)
    before = site.files["a"][0].read_bytes()

    deployment = deploy(versions, versions.v2)

    assert deployment.state == State.FAILED
    step = deployment.steps.get()
    assert step.state == Step.FAILED
    assert "test command failed" in step.error and "put back" in step.error
    assert step.details["pushed"] is False
    assert "test command failed" in deployment.last_error
    assert site.files["a"][0].read_bytes() == before
    assert site.served("a.test") == versions.v1.sha256
    binding.refresh_from_db()
    assert binding.deployed_version == versions.v1


def test_an_unreachable_probe_address_is_reported_not_raised(site, versions, failing_verify):
    binding = bind(site, versions, port=free_port())

    deployment = deploy(versions, versions.v2)

    assert deployment.state == State.FAILED
    assert "refused" in deployment.last_error
    assert "rolling back" in deployment.last_error  # the previous version cannot be verified
    assert states(deployment) == [Step.FAILED]
    assert site.served("a.test") == versions.v1.sha256  # the previous files went back
    binding.refresh_from_db()
    assert binding.deployed_version == versions.v1


def test_a_wave_failing_verification_rolls_back_that_wave_and_keeps_earlier_waves(
    tmp_path, pki, import_pem, failing_verify
):
    names = ["a.test", "b.test", "c.test"]
    v1, v2 = new_leaf(pki, names, days=60), new_leaf(pki, names, days=90)
    for leaf in (v1, v2):
        certificate = import_pem(leaf.pem + pki.intermediate.pem + pki.root.pem + leaf.key_pem)
    found = {v.sha256: v for v in certificate.versions.all()}
    versions = SimpleNamespace(certificate=certificate, v1=found[v1.sha256], v2=found[v2.sha256])
    blocks = {
        "a": (["a.test"], v1),
        "b": (["b.test"], v1),
        "c": (["c.test"], v1),
        "stray": (["stray.test"], new_leaf(pki, ["stray.test"])),
    }
    with nginx_site(tmp_path, blocks, [pki.intermediate]) as site:
        first = bind(site, versions, "a", ["a.test"], wave=1)
        second = bind(site, versions, "b", ["b.test"], wave=2)
        # An SNI mix-up: this target writes the files of another server block.
        mixed_up = bind(site, versions, "stray", ["c.test"], wave=2)

        deployment = deploy(versions, versions.v2)

        assert deployment.state == State.ROLLED_BACK, deployment.last_error
        assert "c.test" in deployment.last_error and "still serves" in deployment.last_error
        assert states(deployment) == [Step.DONE, Step.ROLLED_BACK, Step.ROLLED_BACK]
        assert site.served("a.test") == versions.v2.sha256
        assert site.served("b.test") == versions.v1.sha256
        assert site.served("c.test") == versions.v1.sha256
        deployed = {b.pk: b.deployed_version for b in Binding.objects.all()}
        assert deployed == {first.pk: versions.v2, second.pk: versions.v1, mixed_up.pk: versions.v1}


def test_a_rollout_through_the_haproxy_runtime_api_is_verified_the_same_way(
    tmp_path, pki, versions
):
    v1, v2 = versions.leaves
    crt = tmp_path / "a.pem"
    crt.write_bytes(v1.pem + pki.intermediate.pem + v1.key_pem)
    with require(HAProxy, tmp_path / "lb", [crt]) as lb:
        options = {"socket": str(lb.socket_path), "crt_path": str(crt)}
        target = rollout.create_target(None, versions.certificate.project, "lb", "haproxy", options)
        binding = rollout.create_binding(None, versions.certificate, target, NAMES, HOST, lb.port)

        deployment = deploy(versions, versions.v2)

        assert deployment.state == State.SUCCEEDED, deployment.last_error
        served = probe(HOST, lb.port, "www.a.test")
        assert served.leaf_sha256 == v2.sha256 and len(served.chain_der) == 2
        binding.refresh_from_db()
        assert binding.deployed_version == versions.v2


def test_rollback_redeploys_the_previous_version_verified(site, versions, personas):
    binding = bind(site, versions)
    assert deploy(versions, versions.v2).state == State.SUCCEEDED
    assert rollout.previous_deployed_version(versions.certificate) == versions.v1

    with pytest.raises(PermissionDenied):
        rollout.rollback_certificate(personas["viewer"], versions.certificate, "broken")
    with pytest.raises(ValueError, match="Say why"):
        rollout.rollback_certificate(personas["deployer"], versions.certificate, " ")
    deployment = rollout.rollback_certificate(
        personas["deployer"], versions.certificate, "clients fail", enqueue_job=False
    )
    engine.run_deployment(deployment.pk)
    deployment.refresh_from_db()

    assert deployment.is_rollback and deployment.version == versions.v1
    assert deployment.state == State.SUCCEEDED
    assert site.served("a.test") == versions.v1.sha256
    binding.refresh_from_db()
    assert binding.deployed_version == versions.v1
    event = AuditEvent.objects.get(action="deployment.rollback")
    assert (event.actor_name, event.reason) == ("deployer", "clients fail")


# Waves, pauses, resuming


def test_a_paused_rollout_waits_between_waves_for_continue(site, versions, personas):
    bind(site, versions, "a", ["a.test"], wave=1)
    bind(site, versions, "a", ["www.a.test"], wave=2)

    deployment = deploy(versions, versions.v2, pause_between_waves=True)
    assert deployment.state == State.PAUSED
    assert states(deployment) == [Step.DONE, Step.WAITING]

    rollout.continue_deployment(personas["deployer"], deployment, enqueue_job=False)
    assert engine.run_deployment(deployment.pk) == State.SUCCEEDED
    assert states(deployment) == [Step.DONE, Step.DONE]
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"deployment.pause", "deployment.continue", "deployment.finish"} <= actions


def test_a_rollout_abandoned_by_a_killed_worker_is_resumed_and_a_live_one_is_not(
    site, versions, settings
):
    bind(site, versions)
    deployment = rollout.start_deployment(
        None, versions.certificate, versions.v2, enqueue_job=False
    )
    # The worker died while pushing.
    Deployment.objects.filter(pk=deployment.pk).update(
        state=State.RUNNING, current_wave=1, heartbeat_at=timezone.now()
    )
    deployment.steps.update(state=Step.PUSHING, attempts=1)
    assert engine.run_deployment(deployment.pk) is None  # heartbeat still fresh

    settings.DEPLOY_STALE_AFTER = 60
    Deployment.objects.filter(pk=deployment.pk).update(
        heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    assert rollout.resume_stalled() == [deployment.pk]  # enqueued (after commit)
    assert engine.run_deployment(deployment.pk) == State.SUCCEEDED
    assert deployment.steps.get().attempts == 2
    assert site.served("a.test") == versions.v2.sha256
    assert AuditEvent.objects.filter(action="deployment.resume").count() == 1


def test_a_second_rollout_of_the_same_bindings_is_refused_until_the_first_ends(
    site, versions, personas
):
    bind(site, versions)
    first = rollout.start_deployment(None, versions.certificate, versions.v2, enqueue_job=False)
    with pytest.raises(ValueError, match=f"#{first.pk}.*still pending"):
        rollout.start_deployment(None, versions.certificate, versions.v2, enqueue_job=False)
    rollout.cancel_deployment(personas["deployer"], first, "wrong day")
    first.refresh_from_db()
    assert first.state == State.CANCELLED and states(first) == [Step.SKIPPED]
    assert engine.run_deployment(first.pk) is None
    rollout.start_deployment(None, versions.certificate, versions.v2, enqueue_job=False)


def test_a_cancel_while_running_stops_before_the_next_binding(
    site, versions, personas, monkeypatch
):
    bind(site, versions, "a", ["a.test"])
    bind(site, versions, "a", ["www.a.test"])
    deployment = rollout.start_deployment(
        None, versions.certificate, versions.v2, enqueue_job=False
    )
    verify = engine.verify_binding

    def verify_then_cancel(binding, version, **kwargs):
        problem = verify(binding, version, **kwargs)
        if Deployment.objects.get(pk=deployment.pk).state == State.RUNNING:
            rollout.cancel_deployment(personas["deployer"], deployment, "a person clicked cancel")
        return problem

    monkeypatch.setattr(engine, "verify_binding", verify_then_cancel)

    assert engine.run_deployment(deployment.pk) == State.CANCELLED
    assert states(deployment) == [Step.DONE, Step.SKIPPED]
    deployment.refresh_from_db()
    assert deployment.state == State.CANCELLED


# Targets and bindings


def test_targets_and_bindings_are_validated_and_need_the_manage_permission(
    site, versions, personas, other_project
):
    project = versions.certificate.project
    with pytest.raises(PermissionDenied):
        rollout.create_target(personas["viewer"], project, "t", "manual", {})
    with pytest.raises(ValueError, match="fullchain_path"):
        rollout.create_target(personas["deployer"], project, "t", "nginx_local", {})
    with pytest.raises(ValueError, match="Unknown target kind"):
        rollout.create_target(personas["deployer"], project, "t", "ftp", {})
    target = rollout.create_target(personas["deployer"], project, "t", "manual", {})
    with pytest.raises(ValueError, match="already exists"):
        rollout.create_target(personas["deployer"], project, "t", "manual", {})

    certificate = versions.certificate
    with pytest.raises(ValueError, match=r"does not cover other\.test"):
        rollout.create_binding(None, certificate, target, ["a.test", "other.test"], HOST, 443)
    with pytest.raises(ValueError, match="wildcard"):
        rollout.create_binding(None, certificate, target, ["*.a.test"], HOST, 443)
    elsewhere = rollout.create_target(None, other_project, "t", "manual", {})
    with pytest.raises(ValueError, match="another project"):
        rollout.create_binding(None, certificate, elsewhere, NAMES, HOST, 443)
    binding = rollout.create_binding(
        personas["deployer"], certificate, target, ["A.TEST.", "a.test"], "127.0.0.1", 8443
    )
    assert binding.sni_names == ["a.test"] and binding.probe_address == "127.0.0.1:8443"
    assert rollout.parse_address("[::1]:8443") == ("::1", 8443)
    with pytest.raises(ValueError):
        rollout.parse_address("host")


def test_starting_a_rollout_needs_the_run_permission_and_bindings(versions, personas):
    with pytest.raises(PermissionDenied):
        rollout.start_deployment(personas["viewer"], versions.certificate)
    with pytest.raises(ValueError, match="no bindings"):
        rollout.start_deployment(personas["deployer"], versions.certificate)


# Renewal


def _run_deploy_queue():
    queue = django_rq.get_queue("deploy")
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


@pytest.mark.django_db(transaction=True)
def test_a_renewed_version_is_deployed_automatically(site, versions, pki, import_pem, rq_redis):
    binding = bind(site, versions)
    renewed = new_leaf(pki, days=120)

    import_pem(renewed.pem + pki.intermediate.pem + renewed.key_pem)

    deployment = Deployment.objects.get()
    assert (deployment.trigger, deployment.state) == ("renewal", State.PENDING)
    assert deployment.version.sha256 == renewed.sha256
    _run_deploy_queue()
    deployment.refresh_from_db()
    assert deployment.state == State.SUCCEEDED, deployment.last_error
    assert site.served("a.test") == renewed.sha256
    binding.refresh_from_db()
    assert binding.deployed_version.sha256 == renewed.sha256
    start = AuditEvent.objects.get(action="deployment.start")
    assert (start.actor_name, start.detail["trigger"]) == ("system", "renewal")
    assert AuditEvent.objects.get(action="deployment.finish").source == "job"


def test_a_failed_automatic_rollout_is_reported_to_the_owner(
    tmp_path, site, versions, pki, import_pem, mailoutbox
):
    bind(site, versions)
    keyless = new_leaf(pki, days=120)
    certificate = import_pem(keyless.pem + pki.intermediate.pem)  # no key: nginx cannot use it
    certificate.label_owner = "owner@example.test"
    certificate.save(update_fields=["label_owner"])

    deployment = signals.auto_redeploy(
        None,
        certificate_id=certificate.pk,
        version_id=certificate.current_version_id,
        previous_version_id=versions.v2.pk,
    )
    assert engine.run_deployment(deployment.pk) == State.FAILED

    failed = AuditEvent.objects.get(action="deployment.failed")
    assert "no private key" in failed.detail["error"]
    assert site.served("a.test") == versions.v1.sha256
    [notice] = [m for m in mailoutbox if "owner@example.test" in m.to]
    body = notice.body
    assert "Automatic deployment" in body and "no private key" in body


def test_versions_without_auto_redeploy_bindings_start_nothing(versions):
    assert (
        signals.auto_redeploy(
            None, certificate_id=versions.certificate.pk, version_id=versions.v2.pk
        )
        is None
    )
    assert not Deployment.objects.exists()


def test_a_renewal_during_another_rollout_is_recorded_as_not_started(site, versions, pki):
    bind(site, versions)
    rollout.start_deployment(None, versions.certificate, versions.v2, enqueue_job=False)

    started = signals.auto_redeploy(
        None, certificate_id=versions.certificate.pk, version_id=versions.v2.pk
    )

    assert started is None and Deployment.objects.count() == 1
    failed = AuditEvent.objects.get(action="deployment.failed")
    assert "did not start" in failed.detail["error"] and "still pending" in failed.detail["error"]
