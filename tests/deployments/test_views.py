"""The deployments pages: who may do what, what each form keeps, live progress, audit."""

import json

import pytest
from django.urls import reverse

from certconsole.audit.models import AuditEvent
from deployments.drivers import driver_class
from deployments.forms import OPTION_EXAMPLES, ssh_fingerprint
from deployments.models import (
    Binding,
    Deployment,
    DeploymentStep,
    EndpointCheck,
    MonitoredEndpoint,
    Target,
)
from tests.deployments.matrix import (
    make_binding,
    make_deployment,
    make_target,
    nginx_options,
    ssh_key_line,
)
from tests.pki.factory import make_leaf
from tests.realservices import require
from tests.realservices.sshd import Sshd

SECRET = "s3cr3t-do-not-show"
HTMX = {"HTTP_HX_REQUEST": "true"}


def url(name, *args):
    return reverse(f"deployments:{name}", args=args)


def text(response) -> str:
    return response.content.decode()


def actions(action) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action))


@pytest.fixture
def renewed(inventory_cert, issued_chain, import_pem):
    """inventory_cert with a second, newer version (same names) that is now current."""
    c = issued_chain
    leaf = make_leaf(c.intermediate, days=120)
    import_pem(leaf.pem + c.intermediate.pem + c.root.pem + leaf.key_pem)
    inventory_cert.refresh_from_db()
    return inventory_cert


# Targets


def test_target_list_shows_kind_where_it_writes_and_bindings(client_for, inventory_cert):
    target = make_target(inventory_cert)
    make_binding(inventory_cert, target)
    page = text(client_for("viewer").get(url("target-list")))
    assert "web1" in page and "nginx on this host" in page
    assert "/tmp/certconsole-matrix/fullchain.pem" in page
    assert f'href="{target.get_absolute_url()}#bindings-title">1</a>' in page


def test_target_list_shows_nothing_of_other_projects(client_for, inventory_cert):
    make_target(inventory_cert)
    page = text(client_for("outsider").get(url("target-list")))
    assert "web1" not in page and "No targets yet" in page


def test_deployer_creates_a_target_and_its_credentials_are_never_shown(client_for, project):
    client = client_for("deployer")
    data = {
        "project": project.pk,
        "name": "edge",
        "kind": "webhook",
        "options": json.dumps({"url": "https://hooks.example.test/tls"}),
        "credentials": json.dumps({"secret": SECRET}),
    }
    response = client.post(url("target-create"), data, follow=True)
    target = Target.objects.get(name="edge")
    assert response.redirect_chain[-1][0] == target.get_absolute_url()
    assert target.credentials() == {"secret": SECRET}
    page = text(response)
    assert "stored (encrypted)" in page and SECRET not in page
    assert SECRET not in text(client.get(url("target-list")))
    assert actions("target.create")[0].actor.username == "deployer"


def test_target_form_errors_keep_the_input_but_never_the_credentials(client_for, project):
    data = {
        "project": project.pk,
        "name": "edge",
        "kind": "nginx_local",
        "options": '{"fullchain_path": "/x.pem",',
        "credentials": json.dumps({"password": SECRET}),
    }
    response = client_for("deployer").post(url("target-create"), data)
    assert response.status_code == 400
    page = text(response)
    assert "This is not valid JSON" in page
    assert "{&quot;fullchain_path&quot;: &quot;/x.pem&quot;," in page
    assert SECRET not in page
    assert not Target.objects.exists()


def test_target_options_are_checked_by_the_driver(client_for, project):
    data = {"project": project.pk, "name": "edge", "kind": "nginx_local", "options": "{}"}
    response = client_for("deployer").post(url("target-create"), data)
    assert response.status_code == 400
    assert "fullchain_path" in text(response)


def test_a_duplicate_target_name_is_an_error_next_to_the_name(client_for, inventory_cert):
    make_target(inventory_cert)
    data = {
        "project": inventory_cert.project_id,
        "name": "web1",
        "kind": "nginx_local",
        "options": json.dumps(nginx_options()),
    }
    response = client_for("deployer").post(url("target-create"), data)
    assert response.status_code == 400
    assert "Another target in this project has this name." in text(response)


def test_a_viewer_may_not_create_targets(client_for, project):
    data = {"project": project.pk, "name": "x", "kind": "manual", "options": "{}"}
    assert client_for("viewer").post(url("target-create"), data).status_code == 403


def test_editing_a_target_keeps_credentials_unless_replaced(client_for, inventory_cert):
    target = make_target(inventory_cert)
    target.set_credentials({"password": SECRET})
    target.save()
    client = client_for("deployer")
    form = text(client.get(url("target-edit", target.pk)))
    assert "fullchain_path" in form and SECRET not in form
    options = {**nginx_options(), "timeout": 5}
    data = {"name": "web1b", "options": json.dumps(options), "allow_private_key": "on"}
    response = client.post(url("target-edit", target.pk), data, follow=True)
    target.refresh_from_db()
    assert (target.name, target.options["timeout"]) == ("web1b", 5)
    assert target.credentials() == {"password": SECRET}
    assert "Saved." in text(response) and SECRET not in text(response)
    event = actions("target.change")[0]
    assert event.detail["after"]["name"] == "web1b" and event.detail["credentials"] == ""

    data["credentials"] = json.dumps({"password": "new-" + SECRET})
    client.post(url("target-edit", target.pk), data)
    target.refresh_from_db()
    assert target.credentials() == {"password": "new-" + SECRET}
    assert actions("target.change")[0].detail["credentials"] == "replaced"
    assert "new-" + SECRET not in str(actions("target.change")[0].detail)


def test_target_edit_errors_keep_the_input(client_for, inventory_cert):
    target = make_target(inventory_cert)
    data = {"name": "web1", "options": '{"fullchain_path": "/a.pem"}', "credentials": SECRET}
    response = client_for("deployer").post(url("target-edit", target.pk), data)
    assert response.status_code == 400
    page = text(response)
    assert "key_path" in page and "/a.pem" in page and SECRET not in page
    assert "This is not valid JSON" in page  # the credentials
    target.refresh_from_db()
    assert target.options == nginx_options()


def test_a_viewer_may_not_edit_a_target(client_for, inventory_cert):
    target = make_target(inventory_cert)
    response = client_for("viewer").post(url("target-edit", target.pk), {"name": "x"})
    assert response.status_code == 403


def test_target_detail_shows_options_bindings_and_recent_checks(client_for, inventory_cert):
    target = make_target(inventory_cert)
    binding = make_binding(inventory_cert, target)
    EndpointCheck.objects.create(
        project_id=target.project_id,
        binding=binding,
        host="127.0.0.1",
        port=1,
        server_name="www.example.test",
        checked_at="2026-01-01T00:00:00Z",
        error="Connection refused.",
    )
    page = text(client_for("viewer").get(target.get_absolute_url()))
    assert "fullchain_path" in page and "www.example.test" in page
    assert "Connection refused." in page
    assert "Fetch host key" not in page  # not an SSH target


@pytest.fixture
def sshd(tmp_path):
    with require(Sshd, tmp_path / "sshd") as server:
        yield server


def ssh_target(cert, host="127.0.0.1", port=1, **options):
    options = {
        "host": host,
        "port": port,
        "username": "deploy",
        "fullchain_path": "/etc/tls/site.pem",
        "key_path": "/etc/tls/site.key",
        "reload_command": "true",
        **options,
    }
    return make_target(cert, name="ssh1", kind="ssh", options=options)


def test_first_use_shows_the_ssh_fingerprint_and_approving_pins_it(
    client_for, inventory_cert, sshd
):
    target = ssh_target(inventory_cert, sshd.host, sshd.port)
    client = client_for("deployer")
    page = text(client.get(target.get_absolute_url()))
    assert "not approved yet" in page
    expected = ssh_fingerprint(sshd.host_key_public)

    response = client.post(url("target-fetch-host-key", target.pk))
    assert response.status_code == 200
    assert expected in text(response) and "Approve this host key" in text(response)

    line = response.context["fetched"].line
    data = {"key_line": line, "fingerprint": expected}
    response = client.post(url("target-approve-host-key", target.pk), data, follow=True)
    target.refresh_from_db()
    assert target.options["host_key"].split()[:2] == sshd.host_key_public.split()[:2]
    assert "pinned" in text(response) and expected in text(response)
    event = actions("target.approve_host_key")[0]
    assert event.detail["fingerprint"] == expected


def test_a_changed_ssh_host_key_is_shown_plainly(client_for, inventory_cert, sshd):
    target = ssh_target(inventory_cert, sshd.host, sshd.port, host_key=ssh_key_line())
    response = client_for("deployer").post(url("target-fetch-host-key", target.pk))
    page = text(response)
    assert "The server's key has changed." in page
    assert "Replace the pinned key with this one" in page


def test_fetching_the_key_of_an_unreachable_host_says_so(client_for, inventory_cert):
    target = ssh_target(inventory_cert)
    response = client_for("deployer").post(url("target-fetch-host-key", target.pk))
    assert response.status_code == 200
    assert "Cannot reach 127.0.0.1:1" in text(response)


def test_approving_a_key_that_does_not_match_its_fingerprint_is_refused(client_for, inventory_cert):
    target = ssh_target(inventory_cert)
    data = {"key_line": ssh_key_line(), "fingerprint": ssh_fingerprint(ssh_key_line())}
    response = client_for("deployer").post(url("target-approve-host-key", target.pk), data)
    assert response.status_code == 400
    assert "does not match the fingerprint" in text(response)
    target.refresh_from_db()
    assert "host_key" not in target.options


@pytest.mark.parametrize(
    "name", ["target-fetch-host-key", "target-approve-host-key", "deployment-continue"]
)
def test_actions_refuse_get(client_for, inventory_cert, name):
    pk = make_deployment(inventory_cert).pk if name.startswith("deployment") else 1
    make_target(inventory_cert)
    assert client_for("deployer").get(url(name, pk)).status_code == 405


# Bindings


def test_deployer_binds_a_certificate_from_its_page(client_for, inventory_cert):
    target = make_target(inventory_cert)
    client = client_for("deployer")
    form = client.get(url("binding-create", inventory_cert.pk))
    assert "www.example.test" in text(form)  # the certificate's names are proposed
    data = {
        "target": target.pk,
        "sni_names": "WWW.example.test\n",
        "probe": "127.0.0.1:8443",
        "wave": 2,
        "auto_redeploy": "on",
    }
    response = client.post(url("binding-create", inventory_cert.pk), data)
    assert response.status_code == 302 and response.url == inventory_cert.get_absolute_url()
    binding = Binding.objects.get()
    assert (binding.sni_names, binding.probe_port, binding.wave) == (
        ["www.example.test"],
        8443,
        2,
    )
    assert binding.auto_redeploy and actions("binding.create")


def test_binding_form_errors_keep_the_input(client_for, inventory_cert):
    target = make_target(inventory_cert)
    data = {"target": target.pk, "sni_names": "bad name!\n*.example.test", "probe": "x:99999"}
    response = client_for("deployer").post(url("binding-create", inventory_cert.pk), data)
    assert response.status_code == 400
    page = text(response)
    assert "“bad name!” is not a valid DNS name" in page
    assert "clients send a concrete name" in page
    assert "between 1 and 65535" in page
    assert "x:99999" in page and "bad name!" in page
    assert not Binding.objects.exists()


def test_a_name_the_certificate_does_not_cover_is_refused(client_for, inventory_cert):
    target = make_target(inventory_cert)
    data = {"target": target.pk, "sni_names": "other.example.test", "probe": "127.0.0.1:443"}
    data["wave"] = 1
    response = client_for("deployer").post(url("binding-create", inventory_cert.pk), data)
    assert response.status_code == 400
    assert "does not cover other.example.test" in text(response)


def test_binding_form_without_targets_says_to_add_one(client_for, inventory_cert):
    page = text(client_for("deployer").get(url("binding-create", inventory_cert.pk)))
    assert "This project has no target yet" in page


# The certificate page


def test_the_certificate_page_loads_its_deployments_panel(client_for, inventory_cert):
    page = text(client_for("viewer").get(inventory_cert.get_absolute_url()))
    panel = url("certificate-deployments", inventory_cert.pk)
    assert f'hx-get="{panel}"' in page and f'href="{panel}"' in page


def test_the_panel_shows_bindings_deployments_and_the_actions_each_role_may_take(
    client_for, inventory_cert
):
    make_deployment(inventory_cert, state=Deployment.State.SUCCEEDED)
    panel = url("certificate-deployments", inventory_cert.pk)
    fragment = text(client_for("deployer").get(panel, **HTMX))
    assert fragment.lstrip().startswith('<div id="cert-deployments"')
    assert "web1" in fragment and "Succeeded" in fragment and "0 of 1 binding" in fragment
    assert "Add binding" in fragment and ">Deploy<" in fragment and "Roll back" in fragment
    fragment = text(client_for("viewer").get(panel, **HTMX))
    assert "web1" in fragment
    assert "Add binding" not in fragment and ">Deploy<" not in fragment
    assert "Roll back" not in fragment


def test_the_panel_of_a_certificate_without_deployments_says_what_to_do(client_for, inventory_cert):
    panel = url("certificate-deployments", inventory_cert.pk)
    page = text(client_for("deployer").get(panel))
    assert "<html" in page and "Deployments: none yet — add a binding" in page


# Deployments


def test_the_start_form_defaults_to_the_current_version_and_every_binding(client_for, renewed):
    first, second = make_binding(renewed), make_binding(renewed, wave=2)
    form = client_for("deployer").get(url("deployment-start", renewed.pk)).context["form"]
    assert form["version"].value() == renewed.current_version_id
    assert set(form["bindings"].value()) == {first.pk, second.pk}


def test_starting_a_deployment_opens_its_progress(client_for, inventory_cert, rq_redis):
    binding = make_binding(inventory_cert)
    data = {
        "version": inventory_cert.current_version_id,
        "bindings": [binding.pk],
        "reason": "CHG-1",
    }
    response = client_for("deployer").post(url("deployment-start", inventory_cert.pk), data)
    deployment = Deployment.objects.get()
    assert response.status_code == 302 and response.url == deployment.get_absolute_url()
    assert deployment.reason == "CHG-1" and deployment.started_by.username == "deployer"
    assert actions("deployment.start")


def test_the_start_form_needs_a_binding(client_for, inventory_cert):
    make_binding(inventory_cert)
    data = {"version": inventory_cert.current_version_id, "reason": "x"}
    response = client_for("deployer").post(url("deployment-start", inventory_cert.pk), data)
    assert response.status_code == 400 and "This field is required" in text(response)
    assert 'value="x"' in text(response)


def test_a_refused_start_is_shown_on_the_form(client_for, inventory_cert):
    binding = make_binding(inventory_cert)
    make_deployment(inventory_cert, bindings=[binding])  # still running on that binding
    data = {"version": inventory_cert.current_version_id, "bindings": [binding.pk]}
    response = client_for("deployer").post(url("deployment-start", inventory_cert.pk), data)
    assert response.status_code == 400 and "is still running" in text(response)


def test_the_progress_page_shows_waves_and_bindings_and_polls(client_for, inventory_cert):
    a, b = make_binding(inventory_cert), make_binding(inventory_cert, wave=2)
    deployment = make_deployment(inventory_cert, bindings=[a, b])
    deployment.steps.filter(binding=a).update(
        state=DeploymentStep.State.DONE, summary="Wrote 2 files and reloaded nginx."
    )
    page = text(client_for("viewer").get(deployment.get_absolute_url()))
    assert "1 of 2 bindings" in page
    assert "Wave 1" in page and "Wave 2" in page
    assert "Wrote 2 files and reloaded nginx." in page
    assert "Deployed and verified" in page and "verified" in page
    assert '<progress max="1" value="1"' in page
    assert 'hx-trigger="every 2s"' in page


def test_the_progress_partial_is_only_the_fragment_while_running(client_for, inventory_cert):
    deployment = make_deployment(inventory_cert)
    response = client_for("viewer").get(deployment.get_absolute_url(), **HTMX)
    assert response.status_code == 200
    fragment = text(response)
    assert fragment.lstrip().startswith('<section id="progress"')
    assert "<html" not in fragment and "Cancel the deployment" not in fragment
    assert 'hx-trigger="every 2s"' in fragment


@pytest.mark.parametrize("state", [s for s in Deployment.FINAL_STATES])
def test_the_progress_partial_stops_polling_when_final(client_for, inventory_cert, state):
    deployment = make_deployment(inventory_cert, state=state)
    response = client_for("viewer").get(deployment.get_absolute_url(), **HTMX)
    assert response.status_code == 286
    fragment = text(response)
    assert fragment.lstrip().startswith('<section id="progress"')
    assert "hx-trigger" not in fragment
    assert Deployment.State(state).label in fragment


def test_continue_goes_on_with_a_paused_deployment(client_for, inventory_cert, rq_redis):
    deployment = make_deployment(inventory_cert, state=Deployment.State.PAUSED)
    client = client_for("deployer")
    assert "Continue with the next wave" in text(client.get(deployment.get_absolute_url()))
    response = client.post(url("deployment-continue", deployment.pk), follow=True)
    deployment.refresh_from_db()
    assert deployment.state == Deployment.State.PENDING
    assert "Continuing with the next wave." in text(response)


def test_continue_of_a_running_deployment_is_refused_politely(client_for, inventory_cert):
    deployment = make_deployment(inventory_cert)
    response = client_for("deployer").post(url("deployment-continue", deployment.pk), follow=True)
    assert "Only a rollout paused between waves can be continued." in text(response)


def test_cancel_asks_for_a_reason(client_for, inventory_cert):
    deployment = make_deployment(inventory_cert)
    client = client_for("deployer")
    response = client.post(url("deployment-cancel", deployment.pk), {"reason": ""})
    assert response.status_code == 400 and "Say why" in text(response)
    response = client.post(url("deployment-cancel", deployment.pk), {"reason": "wrong cert"})
    assert response.status_code == 302
    deployment.refresh_from_db()
    assert deployment.state == Deployment.State.CANCELLED
    assert actions("deployment.cancel")[0].reason == "wrong cert"
    assert client.get(url("deployment-cancel", deployment.pk)).status_code == 405


def test_a_viewer_may_watch_but_not_cancel(client_for, inventory_cert):
    deployment = make_deployment(inventory_cert)
    client = client_for("viewer")
    assert "Cancel the deployment" not in text(client.get(deployment.get_absolute_url()))
    response = client.post(url("deployment-cancel", deployment.pk), {"reason": "x"})
    assert response.status_code == 403


def test_the_deployment_list_shows_state_progress_and_filters(
    client_for, inventory_cert, django_assert_max_num_queries
):
    make_deployment(inventory_cert, state=Deployment.State.SUCCEEDED)
    make_deployment(inventory_cert, state=Deployment.State.ROLLED_BACK)
    client = client_for("viewer")
    with django_assert_max_num_queries(12):
        page = text(client.get(url("deployment-list")))
    assert "Succeeded" in page and "Failed and rolled back" in page
    assert "0 of 1 binding" in page and inventory_cert.current_version.sha256[:12] in page
    assert "Showing 1–2 of 2 deployments" in page
    filtered = text(client.get(url("deployment-list"), {"state": "succeeded"}))
    assert "Showing 1–1 of 1 deployment" in filtered
    assert "No deployments yet" in text(client_for("outsider").get(url("deployment-list")))


def test_list_queries_do_not_grow_with_rows(client_for, inventory_cert):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = client_for("viewer")
    counts = []
    for _ in range(2):
        for _ in range(3):
            make_deployment(inventory_cert, state=Deployment.State.SUCCEEDED)
        with CaptureQueriesContext(connection) as queries:
            client.get(url("deployment-list"))
            client.get(url("target-list"))
            client.get(url("endpoint-list"))
        counts.append(len(queries))
    assert counts[0] == counts[1]


# Rollback


@pytest.fixture
def rolled_out(renewed):
    """renewed, deployed first in its old version and then in its current one."""
    old = renewed.versions.exclude(pk=renewed.current_version_id).get()
    binding = make_binding(renewed)
    make_deployment(renewed, state=Deployment.State.SUCCEEDED, bindings=[binding]).steps.update(
        state=DeploymentStep.State.DONE
    )
    Deployment.objects.filter(version=renewed.current_version).update(version=old)
    second = make_deployment(renewed, state=Deployment.State.SUCCEEDED, bindings=[binding])
    second.steps.update(state=DeploymentStep.State.DONE, previous_version=old)
    Binding.objects.filter(pk=binding.pk).update(deployed_version=renewed.current_version)
    return renewed, old


def test_rollback_confirms_what_exactly_will_happen(client_for, rolled_out):
    cert, old = rolled_out
    page = text(client_for("deployer").get(url("certificate-rollback", cert.pk)))
    assert "What will happen" in page and old.sha256[:12] in page
    assert cert.current_version.sha256[:12] in page  # what is served now
    assert "1 binding" in page and 'name="reason"' in page and "data-confirm" in page


def test_rollback_needs_a_reason_and_starts_a_rollback(client_for, rolled_out, rq_redis):
    cert, old = rolled_out
    client = client_for("deployer")
    response = client.post(url("certificate-rollback", cert.pk), {"reason": ""})
    assert response.status_code == 400 and "Say why" in text(response)
    response = client.post(url("certificate-rollback", cert.pk), {"reason": "users see errors"})
    rollback = Deployment.objects.get(is_rollback=True)
    assert response.status_code == 302 and response.url == rollback.get_absolute_url()
    assert rollback.version == old
    assert actions("deployment.rollback")[0].reason == "users see errors"


def test_rollback_with_nothing_to_go_back_to_says_so(client_for, inventory_cert):
    make_binding(inventory_cert)
    client = client_for("deployer")
    assert "no previous version" in text(client.get(url("certificate-rollback", inventory_cert.pk)))
    response = client.post(url("certificate-rollback", inventory_cert.pk), {"reason": "x"})
    assert response.status_code == 400 and "no previous version" in text(response)
    assert not Deployment.objects.exists()


def test_a_viewer_rolling_back_is_refused_and_audited(client_for, rolled_out):
    cert, _ = rolled_out
    response = client_for("viewer").post(url("certificate-rollback", cert.pk), {"reason": "x"})
    assert response.status_code == 403
    denial = actions("access.denied")[0]
    assert denial.actor.username == "viewer"
    assert denial.detail["permission"] == "deployment.rollback"
    assert not Deployment.objects.filter(is_rollback=True).exists()


def test_an_outsider_cannot_see_a_deployment(client_for, inventory_cert):
    deployment = make_deployment(inventory_cert)
    client = client_for("outsider")
    assert client.get(deployment.get_absolute_url()).status_code == 404
    assert client.get(url("certificate-rollback", inventory_cert.pk)).status_code == 404


# Endpoints


def _check(binding=None, endpoint=None, when="2026-01-01T00:00:00Z", **fields):
    owner = binding or endpoint
    return EndpointCheck.objects.create(
        project_id=owner.project_id,
        binding=binding,
        endpoint=endpoint,
        host="127.0.0.1",
        port=8443,
        server_name="www.example.test",
        checked_at=when,
        **fields,
    )


def test_endpoints_show_the_latest_check_with_drift(client_for, inventory_cert):
    binding = make_binding(inventory_cert)
    _check(binding, ok=True, served_sha256="a" * 64, expected_sha256="a" * 64)
    _check(
        binding,
        when="2026-02-01T00:00:00Z",
        ok=True,
        drift=True,
        served_sha256="b" * 64,
        expected_sha256="a" * 64,
        hostname_matches=True,
        protocol="TLSv1.3",
        not_after="2026-03-01T00:00:00Z",
    )
    page = text(client_for("viewer").get(url("endpoint-list")))
    assert "bbbbbbbbbbbb" in page and "expected aaaaaaaaaaaa" in page
    assert ">drift<" in page and "1 drifting" in page and "TLSv1.3" in page
    assert "2026-02-01" in page and "2026-01-01" not in page


def test_check_now_checks_the_project_at_once(client_for, inventory_cert):
    make_binding(inventory_cert)  # probe 127.0.0.1:1: nothing listens
    client = client_for("deployer")
    response = client.post(
        url("endpoint-check"), {"project": inventory_cert.project_id}, follow=True
    )
    check = EndpointCheck.objects.get()
    assert check.error and not check.ok
    assert "Checked 1 name in Alpha: 1 needs attention." in text(response)
    assert "not checked yet" not in text(response)
    assert client.get(url("endpoint-check")).status_code == 405


def test_a_viewer_may_not_check_now(client_for, project):
    assert (
        client_for("viewer").post(url("endpoint-check"), {"project": project.pk}).status_code == 403
    )


def test_deployer_watches_an_endpoint(client_for, project):
    client = client_for("deployer")
    data = {"project": project.pk, "address": "127.0.0.1:8443", "server_name": "api.example.test"}
    response = client.post(url("endpoint-create"), data, follow=True)
    endpoint = MonitoredEndpoint.objects.get()
    assert (endpoint.host, endpoint.port, endpoint.server_name) == (
        "127.0.0.1",
        8443,
        "api.example.test",
    )
    assert "not checked yet" in text(response) and actions("endpoint.create")
    again = client.post(url("endpoint-create"), data)
    assert again.status_code == 400 and "already watched" in text(again)


def test_endpoint_form_errors_keep_the_input(client_for, project):
    data = {"project": project.pk, "address": "[zz]:1", "server_name": "not a name"}
    response = client_for("deployer").post(url("endpoint-create"), data)
    assert response.status_code == 400
    assert "[zz]:1" in text(response) and "not a name" in text(response)
    assert "is not a valid DNS name" in text(response)


def test_discovery_reports_what_it_found(client_for, project):
    client = client_for("requester")
    data = {"project": project.pk, "entries": "127.0.0.1:1/www.example.test\n"}
    response = client.post(url("discover"), data)
    assert response.status_code == 200
    assert "1 address scanned" in text(response) and "unreachable" in text(response)
    assert actions("discovery.scan")


def test_discovery_refuses_to_sweep_other_networks(client_for, project):
    data = {"project": project.pk, "entries": "10.0.0.0/24:443"}
    response = client_for("requester").post(url("discover"), data)
    assert response.status_code == 400 and "only loopback ranges" in text(response)
    assert "10.0.0.0/24:443" in text(response)


@pytest.mark.parametrize("kind", sorted(OPTION_EXAMPLES))
def test_the_option_example_of_every_kind_is_valid(kind):
    driver_class(kind).parse_options(OPTION_EXAMPLES[kind])
