"""manual driver: nothing is pushed; the details say what to install where."""

import json

import pytest

from deployments.drivers import DriverError, get_driver
from deployments.drivers.base import Bundle
from deployments.drivers.manual import ManualDriver

BUNDLE = Bundle("a.test", "ab" * 32, b"CERT\n", b"CHAIN\n", b"-----BEGIN PRIVATE KEY-----\n")


def test_push_waits_for_the_live_check_and_lists_the_files_to_install():
    driver = get_driver(
        "manual",
        {"instructions": "Copy to the appliance UI.", "fullchain_path": "/etc/ssl/a.pem"},
    )
    result = driver.push(BUNDLE)
    assert result.awaiting_live_check
    assert "live check marks it deployed" in result.summary
    assert [f["file"] for f in result.details["files"]] == ["fullchain.pem", "privkey.pem"]
    assert result.details["files"][0]["install_at"] == "/etc/ssl/a.pem"
    assert result.details["expect_sha256"] == BUNDLE.sha256
    assert result.details["instructions"] == "Copy to the appliance UI."
    assert "PRIVATE KEY" not in json.dumps(result.details)
    assert not driver.needs_private_key


def test_no_options_at_all_is_fine():
    assert ManualDriver(None).push(BUNDLE).awaiting_live_check
    assert ManualDriver({}).describe().startswith("Manual")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"instructions": 3}, "instructions must be a string"),
        ({"key_path": "privkey.pem"}, "key_path must be an absolute path"),
        ({"url": "x"}, "Unknown option 'url'"),
    ],
)
def test_bad_options_are_refused_naming_the_field(options, message):
    with pytest.raises(DriverError, match=message):
        ManualDriver.parse_options(options)


def test_an_unknown_kind_is_a_permanent_error():
    with pytest.raises(DriverError, match="Unknown target kind") as refused:
        get_driver("ftp", {})
    assert refused.value.permanent
