"""Strict CSP with nonces, no inline handlers, CSRF everywhere."""

import re
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


@pytest.mark.django_db
def test_pages_carry_a_strict_csp_with_a_nonce_on_every_script(client_for):
    response = client_for("viewer").get(reverse("dashboard"))
    csp = response["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp
    scripts = re.findall(r"<script[^>]*>", response.content.decode())
    assert scripts, "the page loads htmx and app.js"
    assert all(f'nonce="{nonce}"' in tag for tag in scripts)
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_templates_have_no_inline_handlers_or_remote_assets():
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text()
        assert not re.search(r"\son[a-z]+\s*=", text), f"inline handler in {path}"
        assert not re.search(r"(src|href)=\"https?://", text), f"remote asset in {path}"


@pytest.mark.django_db
def test_htmx_is_served_locally(client_for):
    page = client_for("viewer").get(reverse("dashboard")).content.decode()
    src = re.search(r'<script[^>]*src="([^"]*htmx[^"]*)"', page).group(1)
    assert src.startswith("/static/")


@pytest.mark.django_db
def test_post_without_csrf_token_is_refused_with_a_page(personas):
    client = Client(enforce_csrf_checks=True)
    client.force_login(personas["projectadmin"])
    response = client.post(
        reverse("access:member-add", args=["alpha"]), {"username": "outsider", "role": "viewer"}
    )
    assert response.status_code == 403
    assert "security token is missing" in response.content.decode()


@pytest.mark.django_db
def test_unknown_url_is_a_friendly_404(client_for):
    response = client_for("viewer").get("/no/such/page/")
    assert response.status_code == 404
    assert "Not found" in response.content.decode()
