"""/metrics: Prometheus text, cert-manager names, bounded labels, token or network only."""

from django.test import Client

from api.models import ApiToken


def test_metrics_from_loopback(inventory_cert, rq_redis, settings):
    settings.METRICS_MAX_CERTIFICATES = 1
    Client().get("/healthz")  # one observed request, at least
    response = Client(REMOTE_ADDR="127.0.0.1").get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    name = inventory_cert.name
    assert (
        f'certconsole_certificate_expiration_timestamp_seconds{{name="{name}",project="alpha"}}'
        in text
    )
    assert (
        "certconsole_certificate_ready_status"
        f'{{condition="True",name="{name}",project="alpha"}} 1.0' in text
    )
    assert 'certconsole_certificates{project="alpha",status="valid"} 1.0' in text
    assert "certconsole_queue_up 1.0" in text
    assert "certconsole_http_request_duration_seconds_bucket" in text


def test_metrics_refuse_other_networks_without_a_token(personas, project, settings):
    settings.METRICS_TOKEN = "s3cret-scraper"
    remote = Client(REMOTE_ADDR="192.0.2.10")
    assert remote.get("/metrics").status_code == 403
    assert remote.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scraper").status_code == 200
    _, plain = ApiToken.issue(None, personas["viewer"], project, name="x")
    assert remote.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {plain}").status_code == 403
    _, scraper = ApiToken.issue(None, personas["viewer"], project, name="y", metrics=True)
    assert remote.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {scraper}").status_code == 200


def test_the_expiry_series_stay_bounded(import_pem, issued_chain, settings):
    from tests.pki.factory import make_leaf

    for i in range(3):
        leaf = make_leaf(issued_chain.intermediate, name=f"h{i}.example.test", days=10 + i)
        import_pem(leaf.pem + issued_chain.intermediate.pem)
    settings.METRICS_MAX_CERTIFICATES = 2
    text = Client(REMOTE_ADDR="::1").get("/metrics").content.decode()
    lines = [x for x in text.splitlines() if x.startswith("certconsole_certificate_expiration")]
    assert len(lines) == 2 and all("h2.example.test" not in line for line in lines)
