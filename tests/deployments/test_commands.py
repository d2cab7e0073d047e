"""add_target, add_binding, deploy and check_endpoints: the web's procedures, audited as cli."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from certconsole.audit.models import AuditEvent
from deployments.models import Binding, Deployment, Target
from tests.deployments.nginx_site import HOST, NAMES, import_versions, make_pki, nginx_site
from tests.realservices.ports import free_port


@pytest.fixture(autouse=True)
def _verify_timeout(settings):
    settings.DEPLOY_VERIFY_TIMEOUT = 10  # a passing verification ends at once


@pytest.fixture
def pki():
    return make_pki()


@pytest.fixture
def versions(pki, import_pem):
    return import_versions(import_pem, pki)


@pytest.fixture
def site(tmp_path, pki, versions):
    with nginx_site(tmp_path, {"a": (NAMES, versions.leaves[0])}, [pki.intermediate]) as site:
        yield site


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def add_target_and_binding(site, versions, probe_port=None) -> tuple[dict, dict]:
    target = json.loads(
        run(
            "add_target",
            "--project=alpha",
            "--name=web1",
            "--kind=nginx_local",
            f"--options={json.dumps(site.options('a'))}",
            "--json",
        )
    )
    binding = json.loads(
        run(
            "add_binding",
            f"--certificate={versions.certificate.name}",
            "--target=web1",
            "--sni=a.test",
            "--sni=www.a.test",
            f"--probe={HOST}:{probe_port or site.port}",
            "--wave=2",
            "--json",
        )
    )
    return target, binding


def test_targets_and_bindings_are_added_as_json_and_audited_as_cli(site, versions):
    target, binding = add_target_and_binding(site, versions)

    assert (target["name"], target["kind"], target["has_credentials"]) == (
        "web1",
        "nginx_local",
        False,
    )
    assert "nginx on this host" in target["description"]
    assert binding["sni_names"] == NAMES and binding["wave"] == 2
    assert binding["probe"] == f"{HOST}:{site.port}" and binding["auto_redeploy"] is True
    assert Binding.objects.get(pk=binding["id"]).target_id == target["id"]
    for action in ("target.create", "binding.create"):
        event = AuditEvent.objects.get(action=action)
        assert event.source == "cli" and event.actor_name.startswith("cli:")


def test_credentials_are_stored_encrypted_and_never_printed(versions):
    options = json.dumps({"url": "http://127.0.0.1:9/hook"})
    out = run(
        "add_target",
        "--project=alpha",
        "--name=hook",
        "--kind=webhook",
        f"--options={options}",
        '--credentials={"secret": "s3cret-value"}',
        "--json",
    )
    assert "s3cret" not in out and json.loads(out)["has_credentials"] is True
    target = Target.objects.get(name="hook")
    assert "s3cret" not in target.encrypted_credentials
    assert target.credentials() == {"secret": "s3cret-value"}
    assert "s3cret" not in json.dumps(AuditEvent.objects.get(action="target.create").detail)


def test_bad_input_is_a_command_error(versions):
    with pytest.raises(CommandError, match="No project"):
        run("add_target", "--project=nope", "--name=x", "--kind=manual", "--options={}")
    with pytest.raises(CommandError, match="not valid JSON"):
        run("add_target", "--project=alpha", "--name=x", "--kind=manual", "--options={")
    with pytest.raises(CommandError, match="fullchain_path"):
        run("add_target", "--project=alpha", "--name=x", "--kind=nginx_local", "--options={}")
    with pytest.raises(CommandError, match="No target"):
        run(
            "add_binding",
            f"--certificate={versions.certificate.name}",
            "--target=nope",
            "--sni=a.test",
            "--probe=127.0.0.1:443",
        )


def test_deploy_wait_runs_the_rollout_here_and_prints_json(site, versions):
    add_target_and_binding(site, versions)

    report = json.loads(
        run("deploy", f"--certificate={versions.certificate.name}", "--wait", "--json")
    )

    assert report["state"] == "succeeded" and report["version"] == versions.v2.sha256
    assert [s["state"] for s in report["steps"]] == ["done"]
    assert site.served("www.a.test") == versions.v2.sha256
    finish = AuditEvent.objects.get(action="deployment.finish")
    assert finish.source == "cli"


def test_deploy_wait_exits_non_zero_when_the_rollout_fails(site, versions, settings):
    settings.DEPLOY_VERIFY_TIMEOUT = 2.5  # this one fails: no need to wait long
    add_target_and_binding(site, versions, probe_port=free_port())
    out = StringIO()

    with pytest.raises(CommandError) as raised:
        call_command(
            "deploy",
            f"--certificate={versions.certificate.name}",
            f"--version={versions.v2.sha256}",
            "--wait",
            "--json",
            stdout=out,
        )

    assert raised.value.returncode == 1
    report = json.loads(out.getvalue())
    assert report["state"] == "failed" and "refused" in report["error"]


def test_deploy_without_wait_queues_the_rollout_after_commit(
    site, versions, django_capture_on_commit_callbacks
):
    add_target_and_binding(site, versions)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        out = run("deploy", f"--certificate={versions.certificate.name}")
    assert len(callbacks) == 1
    assert Deployment.objects.get().state == Deployment.State.PENDING
    assert "pending" in out
    with pytest.raises(CommandError, match="has no version"):
        run("deploy", f"--certificate={versions.certificate.name}", "--version=abcd")


def test_check_endpoints_prints_every_check_as_json(site, versions):
    add_target_and_binding(site, versions)

    result = json.loads(run("check_endpoints", "--project=alpha", "--json"))

    # Nothing deployed through the console yet: expected is the current version, v2.
    assert (result["total"], result["failed"], result["drift"]) == (2, 0, 2)
    check = result["checks"][0]
    assert check["served_sha256"] == versions.v1.sha256
    assert check["expected_sha256"] == versions.v2.sha256
    assert check["hostname_matches"] and check["chain_complete"] and check["ok"]
