"""A ProjectAdmin reads the dashboard, follows a count to the list, and edits the policy."""

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from inventory.models import NotificationPolicy
from tests.inventory.test_reminders import make_cert

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_dashboard_counts_timeline_filtered_list_and_policy(signed_in, live_server, project):
    now = timezone.now()
    for name, days in (("shop-web", 9), ("api-gw", 20), ("old-box", -4), ("far-svc", 120)):
        make_cert(project, name, days, owner="owner@example.test", now=now)

    page = signed_in("projectadmin")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expiring = page.locator("a.stat.status-expiring")
    expect(expiring).to_contain_text("2")
    expect(page.locator("a.stat.status-expired")).to_contain_text("1")
    timeline = page.get_by_role("img", name=re.compile("Certificates expiring per week"))
    expect(timeline).to_be_visible()
    expect(page.locator("svg.timeline .bar.has-count")).to_have_count(3)
    expect(page.locator(".timeline-summary")).to_contain_text("3 certificates expire")
    page.screenshot(path=str(live_server_artifact("dashboard.png")), full_page=True)

    expiring.click()
    expect(page).to_have_url(re.compile(r"/certificates/\?status=expiring&project=alpha$"))
    rows = page.locator("#results tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="shop-web")).to_have_count(1)

    page.goto(f"{live_server.url}/certificates/notifications/")
    page.screenshot(path=str(live_server_artifact("notifications.png")), full_page=True)
    page.get_by_role("link", name="Edit the notification policy").click()
    page.screenshot(path=str(live_server_artifact("notification_policy.png")), full_page=True)
    page.get_by_label("Thresholds (days before expiry)").fill("30, 7, 0")
    page.get_by_label("Other addresses").fill("oncall@example.test")
    page.get_by_label("Sun").check()
    page.get_by_role("button", name="Save the policy").click()
    expect(page.get_by_role("status")).to_contain_text("Notification policy of “Alpha” saved.")
    expect(page.locator(".notify-policy")).to_contain_text("oncall@example.test")
    policy = NotificationPolicy.objects.get(project=project)
    assert (policy.thresholds, policy.quiet_days) == ([30, 7, 0], [6])


def live_server_artifact(name):
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "var" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name
