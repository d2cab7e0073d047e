"""A deployer rolls a renewed certificate out to a real nginx and watches it succeed (Chromium)."""

import re

import pytest
from playwright.sync_api import expect

from deployments import engine, rollout, tlsprobe
from deployments.models import Deployment
from tests.pki.factory import make_leaf
from tests.realservices import require
from tests.realservices.nginx import Nginx, ServerBlock

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def site(tmp_path, issued_chain):
    """nginx serving the first leaf for www.example.test from files a target may rewrite."""
    c = issued_chain
    cert_path, key_path = tmp_path / "tls" / "site.pem", tmp_path / "tls" / "site.key"
    cert_path.parent.mkdir()
    cert_path.write_bytes(c.leaf.pem + c.intermediate.pem)
    key_path.write_bytes(c.leaf.key_pem)
    servers = [ServerBlock(["www.example.test"], cert_path, key_path, default=True)]
    with require(Nginx, tmp_path / "nginx", servers) as nginx:
        nginx.cert_path, nginx.key_path = cert_path, key_path
        yield nginx


def test_deployer_deploys_a_renewed_certificate_and_watches_it_succeed(
    signed_in, live_server, rq_redis, project, inventory_cert, issued_chain, import_pem, site
):
    c = issued_chain
    renewed = make_leaf(c.intermediate, days=120)
    cert = import_pem(renewed.pem + c.intermediate.pem + c.root.pem + renewed.key_pem)
    assert cert.pk == inventory_cert.pk and cert.current_version.sha256 == renewed.sha256
    target = rollout.create_target(
        None,
        project,
        "edge nginx",
        "nginx_local",
        {
            "fullchain_path": str(site.cert_path),
            "key_path": str(site.key_path),
            "test_command": site.test_command(),
            "reload_command": site.reload_command(),
        },
    )
    rollout.create_binding(None, cert, target, ["www.example.test"], site.host, site.port)
    served = tlsprobe.probe(site.host, site.port, "www.example.test").leaf_sha256
    assert served == c.leaf.sha256

    page = signed_in("deployer")
    page.goto(f"{live_server.url}/certificates/{cert.pk}/")
    panel = page.locator("#cert-deployments")
    expect(panel.get_by_role("link", name="edge nginx")).to_be_visible()
    panel.get_by_role("link", name="Deploy", exact=True).click()

    expect(page.get_by_role("heading", name=re.compile("^Deploy "))).to_be_visible()
    expect(page.get_by_label(re.compile("Wave 1: edge nginx"))).to_be_checked()
    page.get_by_label("Reason").fill("CHG-7 renewed certificate")
    page.get_by_role("button", name="Start the deployment").click()

    progress = page.locator("#progress")
    expect(progress).to_contain_text("Pending")
    expect(progress).to_contain_text("0 of 1 binding")
    expect(progress).to_have_attribute("hx-trigger", "every 2s")

    deployment = Deployment.objects.get()
    assert engine.run_deployment(deployment.pk) == Deployment.State.SUCCEEDED

    # The page polls by itself: no reload.
    expect(progress).to_contain_text("Succeeded", timeout=15_000)
    expect(progress).to_contain_text("1 of 1 binding")
    expect(progress).to_contain_text("Deployed and verified")
    expect(progress).not_to_have_attribute("hx-trigger", "every 2s")
    assert tlsprobe.probe(site.host, site.port, "www.example.test").leaf_sha256 == renewed.sha256

    page.get_by_role("link", name=cert.name).first.click()
    expect(page.locator("#cert-deployments")).to_contain_text("current")
