import pytest
from django.urls import reverse

from tests.realservices.ports import free_port


def test_healthz_answers_without_dependencies(client):
    response = client.get(reverse("healthz"))
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_ok_with_database_and_redis(client, rq_redis):
    response = client.get(reverse("readyz"))
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "ok"}


@pytest.mark.django_db
def test_readyz_names_redis_when_it_is_down(client, settings):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings.RQ_QUEUES = {name: {"URL": dead} for name in settings.RQ_QUEUE_NAMES}
    response = client.get(reverse("readyz"))
    assert response.status_code == 503
    body = response.json()
    assert body["checks"] == {"database": "ok", "redis": "failed"}
    assert "Connection" in body["errors"]["redis"]
