"""webhook driver against a real HTTP receiver."""

import json
import time

import pytest

from deployments.drivers import DriverError, get_driver
from deployments.drivers.base import Bundle
from deployments.drivers.webhook import WebhookDriver, sign, verify_signature
from tests.realservices import require
from tests.realservices.certs import make_ca, make_intermediate, make_leaf
from tests.realservices.ports import free_port
from tests.realservices.webhook import WebhookReceiver

SECRET = "whsec-test"


class ScriptedReceiver(WebhookReceiver):
    """Answers each request with the next status of a script, then keeps the last one."""

    def __init__(self, statuses, **kwargs):
        self.script = list(statuses)
        super().__init__(**kwargs)

    @property
    def status(self) -> int:
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    @status.setter
    def status(self, value: int) -> None:
        pass  # the base class sets its default; the script decides


@pytest.fixture(scope="module")
def bundle():
    leaf = make_leaf(make_intermediate(make_ca()), ["a.test"])
    return Bundle(
        name="a.test",
        sha256=leaf.sha256,
        cert_pem=leaf.cert_pem,
        chain_pem=leaf.fullchain_pem[len(leaf.cert_pem) :],
        key_pem=leaf.key_pem,
        fetch_url="https://console.example/bundles/once/abc123",
    )


def driver_for(receiver, *, sleeps=None, **options) -> WebhookDriver:
    driver = get_driver("webhook", {"url": receiver.url, **options}, {"secret": SECRET})
    if sleeps is not None:
        driver.sleep = sleeps.append  # record the backoff instead of waiting
    return driver


def test_the_notice_is_signed_and_verifies_and_carries_no_key_by_default(bundle):
    with require(WebhookReceiver, response_body=b'{"installed": true}') as receiver:
        result = driver_for(receiver).push(bundle)
        [request] = receiver.requests

    timestamp = request.headers["X-CertConsole-Timestamp"]
    signature = request.headers["X-CertConsole-Signature"]
    assert verify_signature(SECRET, timestamp, request.body, signature)
    assert not verify_signature("other secret", timestamp, request.body, signature)
    assert not verify_signature(SECRET, timestamp, request.body + b" ", signature)
    notice = request.json()
    assert notice["event"] == "certificate.deployed"
    assert notice["certificate"] == "a.test"
    assert notice["sha256"] == bundle.sha256
    assert notice["fetch_url"] == bundle.fetch_url
    assert notice["cert_pem"].encode() == bundle.cert_pem
    assert notice["chain_pem"].encode() == bundle.chain_pem
    assert "key_pem" not in notice
    assert request.headers["Content-Type"] == "application/json"
    assert result.details["status_code"] == 200
    assert result.details["response_body"] == '{"installed": true}'
    assert result.details["key_included"] is False


def test_include_key_sends_the_key_but_never_records_it(bundle):
    with require(WebhookReceiver) as receiver:
        result = driver_for(receiver, include_key=True).push(bundle)
        [request] = receiver.requests
    assert request.json()["key_pem"].encode() == bundle.key_pem
    assert result.details["key_included"] is True
    assert "PRIVATE KEY" not in json.dumps(result.details)
    assert driver_for(receiver, include_key=True).needs_private_key
    assert not driver_for(receiver).needs_private_key


def test_a_503_is_retried_after_backoff_and_then_succeeds(bundle):
    sleeps = []
    with require(ScriptedReceiver, [503, 200]) as receiver:
        result = driver_for(receiver, sleeps=sleeps).push(bundle)
        first, second = receiver.requests
    assert sleeps == [0.5]
    assert [a["status"] for a in result.details["attempts"]] == [503, 200]
    assert first.headers["X-CertConsole-Delivery"] == second.headers["X-CertConsole-Delivery"]
    assert "after 2 attempt(s)" in result.summary


def test_retries_wait_longer_each_time_and_give_up_as_a_temporary_error(bundle):
    sleeps = []
    with require(WebhookReceiver, status=502, response_body=b"bad gateway") as receiver:
        with pytest.raises(DriverError, match="answered 502 after 4 attempts") as failed:
            driver_for(receiver, sleeps=sleeps).push(bundle)
        assert len(receiver.requests) == 4
    assert sleeps == [0.5, 1.0, 2.0]
    assert not failed.value.permanent
    assert failed.value.details["response_body"] == "bad gateway"


def test_retry_after_is_honoured_up_to_ten_seconds(bundle):
    sleeps = []
    headers = {"Retry-After": "120"}
    with require(ScriptedReceiver, [429, 429, 200], response_headers=headers) as receiver:
        driver_for(receiver, sleeps=sleeps).push(bundle)
    assert sleeps == [10.0, 10.0]


def test_a_400_is_permanent_and_not_retried(bundle):
    sleeps = []
    with require(WebhookReceiver, status=400, response_body=b"x" * 5000) as receiver:
        with pytest.raises(DriverError, match="answered 400") as failed:
            driver_for(receiver, sleeps=sleeps).push(bundle)
        assert len(receiver.requests) == 1
    assert failed.value.permanent
    assert sleeps == []
    assert failed.value.details["status_code"] == 400
    assert len(failed.value.details["response_body"]) == 2000


def test_an_unreachable_receiver_is_retried_then_a_temporary_error(bundle):
    sleeps = []
    driver = get_driver(
        "webhook", {"url": f"http://127.0.0.1:{free_port()}/hook", "retries": 1}, {"secret": "s"}
    )
    driver.sleep = sleeps.append
    with pytest.raises(DriverError, match="could not be reached after 2 attempt") as failed:
        driver.push(bundle)
    assert not failed.value.permanent
    assert sleeps == [0.5]


def test_a_receiver_slower_than_the_timeout_counts_as_unreachable(bundle):
    with require(WebhookReceiver, delay=2) as receiver:
        driver = driver_for(receiver, timeout=1, retries=0)
        started = time.monotonic()
        with pytest.raises(DriverError, match="timed out"):
            driver.push(bundle)
        assert time.monotonic() - started < 1.8


def test_a_missing_secret_is_a_permanent_error(bundle):
    driver = WebhookDriver({"url": "http://127.0.0.1:1/"})
    with pytest.raises(DriverError, match="secret is missing") as refused:
        driver.push(bundle)
    assert refused.value.permanent


def test_verify_signature_rejects_stale_and_malformed_input():
    body = b'{"event":"certificate.deployed"}'
    now = int(time.time())
    assert verify_signature(SECRET, str(now), body, sign(SECRET, now, body))
    stale = now - 301
    assert not verify_signature(SECRET, str(stale), body, sign(SECRET, stale, body))
    assert verify_signature(SECRET, str(stale), body, sign(SECRET, stale, body), max_age=600)
    assert not verify_signature(SECRET, "soon", body, sign(SECRET, "soon", body))
    assert not verify_signature(SECRET, str(now), body, None)
    assert not verify_signature(SECRET, str(now), body, sign(SECRET, now, body)[7:])


def test_describe_hides_the_query_string():
    driver = WebhookDriver({"url": "https://hooks.example/deploy?token=abc"})
    assert driver.describe() == "POST a signed notice to https://hooks.example/deploy"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "url is required"),
        ({"url": "ftp://example.org/x"}, "url must be an http:// or https:// URL"),
        ({"url": "https://x.example/", "include_key": "yes"}, "include_key must be true or"),
        ({"url": "https://x.example/", "timeout": 0}, "timeout must be a number from 1 to 60"),
        ({"url": "https://x.example/", "retries": 9}, "retries must be a whole number from 0"),
        ({"url": "https://x.example/", "secret": "s"}, "Unknown option 'secret'"),
    ],
)
def test_bad_options_are_refused_naming_the_field(options, message):
    with pytest.raises(DriverError, match=message) as refused:
        WebhookDriver.parse_options(options)
    assert refused.value.permanent
