"""A requester orders a certificate (HTTP-01, Pebble) and watches the timeline reach Issued."""

import re
import threading
import time

import pytest
from django.db import connection
from playwright.sync_api import expect

from orders import issuance
from orders.models import Order
from tests.orders import fixtures as order_fixtures
from tests.orders.fixtures import make_account

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
# Pebble, its settings and the console's HTTP-01 endpoint, shared with tests/orders.
acme_settings = order_fixtures.acme_settings
pebble = order_fixtures.pebble
console_http = order_fixtures.console_http


class Worker(threading.Thread):
    """Plays the RQ worker: advances every due order until stopped."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stopping = threading.Event()

    def run(self):
        try:
            while not self.stopping.is_set():
                for order_id in issuance.due_orders().values_list("pk", flat=True):
                    issuance.advance(order_id)
                time.sleep(0.1)
        finally:
            connection.close()


@pytest.fixture
def worker():
    thread = Worker()
    thread.start()
    yield thread
    thread.stopping.set()
    thread.join(10)


def test_requester_orders_and_watches_the_timeline_reach_issued(
    signed_in, live_server, project, pebble, console_http, worker
):
    make_account(project, pebble)

    page = signed_in("requester")
    page.goto(f"{live_server.url}/orders/")
    page.get_by_role("link", name="Order a certificate", exact=True).click()
    page.get_by_label("Domain names").fill("browser.example.com\nwww.browser.example.com")
    page.get_by_label("Domain validation (DCV)").select_option("http-01")
    page.get_by_label("Labels").fill("env=prod")
    page.get_by_role("button", name="Place order").click()

    order = Order.objects.get()
    expect(page).to_have_url(re.compile(re.escape(order.get_absolute_url()) + "$"))
    state = page.locator("#timeline [data-state]")
    expect(state).to_have_text("Issued", timeout=30_000)  # htmx polls the partial
    expect(page.locator("#timeline")).to_contain_text("Every name is validated.")
    expect(page.get_by_role("button", name="Cancel order")).to_have_count(0)  # swapped out too
    order.refresh_from_db()
    assert order.state == Order.State.ISSUED
    assert order.certificate.label_env == "prod"
    page.locator("#timeline").get_by_role("link", name=order.certificate.name).click()
    expect(page).to_have_url(re.compile(rf"/certificates/{order.certificate.pk}/"))
