"""Webhook targets receive a short-lived, single-use URL to fetch their bundle."""

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from certconsole.audit.models import AuditEvent
from deployments.bundles import bundle_for
from deployments.drivers import get_driver
from deployments.models import Binding, BundleGrant, Deployment, DeploymentStep, Target
from deployments.rollout import fetch_url_for
from tests.realservices import require
from tests.realservices.webhook import WebhookReceiver


@pytest.fixture
def webhook_step(inventory_cert, settings):
    settings.CERTCONSOLE_BASE_URL = "http://testserver"

    def make(url="http://127.0.0.1:9/hook", allow_private_key=False):
        target = Target(
            project=inventory_cert.project,
            name=f"hook-{Target.objects.count()}",
            kind=Target.Kind.WEBHOOK,
            options={"url": url, "retries": 0},
            allow_private_key=allow_private_key,
        )
        target.set_credentials({"secret": "s3cret"})
        target.save()
        binding = Binding.objects.create(
            project=inventory_cert.project,
            certificate=inventory_cert,
            target=target,
            sni_names=["www.example.test"],
            probe_host="127.0.0.1",
            probe_port=443,
        )
        deployment = Deployment.objects.create(
            project=inventory_cert.project,
            certificate=inventory_cert,
            version=inventory_cert.current_version,
        )
        return DeploymentStep.objects.create(deployment=deployment, binding=binding, wave=1)

    return make


def path_of(url):
    return urlsplit(url).path


def test_the_url_gives_the_bundle_once(client, webhook_step, inventory_cert):
    url = fetch_url_for(webhook_step())
    assert url.startswith("http://testserver/deployments/fetch/")
    first = client.get(path_of(url))
    assert first.status_code == 200
    assert "no-store" in first["Cache-Control"]
    body = first.json()
    assert body["sha256"] == inventory_cert.current_version.sha256
    assert "BEGIN CERTIFICATE" in body["fullchain_pem"]
    assert "key_pem" not in body  # the target is not allowed keys
    again = client.get(path_of(url))
    assert again.status_code == 410
    assert "already used" in again.json()["error"]["message"]
    fetch = AuditEvent.objects.get(action="certificate.fetch")
    assert fetch.detail["key_included"] is False


def test_the_key_comes_only_when_the_target_is_allowed_keys(client, webhook_step):
    url = fetch_url_for(webhook_step(allow_private_key=True))
    assert "BEGIN PRIVATE KEY" in client.get(path_of(url)).json()["key_pem"]


def test_an_expired_url_is_gone_and_only_the_hash_is_stored(client, webhook_step):
    url = fetch_url_for(webhook_step())
    token = path_of(url).rstrip("/").rsplit("/", 1)[-1]
    grant = BundleGrant.objects.get()
    assert token not in grant.token_sha256
    BundleGrant.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert client.get(path_of(url)).status_code == 410


def test_no_url_without_a_public_base_url(webhook_step, settings):
    step = webhook_step()
    settings.CERTCONSOLE_BASE_URL = ""
    assert fetch_url_for(step) is None


def test_the_signed_notice_carries_a_url_the_receiver_can_use(
    client, webhook_step, inventory_cert, tmp_path
):
    with require(WebhookReceiver) as receiver:
        step = webhook_step(url=receiver.url)
        target = step.binding.target
        bundle = bundle_for(
            inventory_cert.current_version, include_key=False, fetch_url=fetch_url_for(step)
        )
        get_driver(target.kind, target.options, target.credentials()).push(bundle)
        [notice] = receiver.wait_for(1, timeout=5)
    fetched = client.get(path_of(notice.json()["fetch_url"]))
    assert fetched.json()["sha256"] == inventory_cert.current_version.sha256
