"""The orders fixtures (tests/orders/fixtures.py), also imported by the browser tests."""

from tests.orders.fixtures import (  # noqa: F401
    account,
    acme_settings,
    bind9,
    console_http,
    offline_account,
    pebble,
    pebble_on_bind,
)
