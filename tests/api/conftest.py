"""Fixtures for the API tests: tokens per role, and clients that send them."""

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from api.models import ApiToken
from certconsole.access.roles import Role
from tests.orders.fixtures import account, acme_settings, console_http, pebble  # noqa: F401


@pytest.fixture(autouse=True)
def _fresh_throttle():
    """Rate-limit counters live in the cache; each test starts with none."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def make_token(personas, project):
    """make_token("requester", read_only=False, certificates=[...]) → (ApiToken, secret)."""

    def make(persona="viewer", role=None, target_project=None, **options):
        user = personas[persona]
        role = role or (persona if persona in Role.values else Role.VIEWER)
        return ApiToken.issue(
            None, user, target_project or project, name=f"{persona} test", role=role, **options
        )

    return make


@pytest.fixture
def api_client():
    """api_client(secret) → a DRF test client sending `Authorization: Bearer secret`."""

    def make(secret: str | None = None) -> APIClient:
        client = APIClient()
        if secret:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        return client

    return make


@pytest.fixture
def token_client(make_token, api_client):
    """token_client("keycustodian", read_only=False) → a client with a fresh token of that role."""

    def make(persona="viewer", **options) -> APIClient:
        _, secret = make_token(persona, **options)
        return api_client(secret)

    return make
