"""nginx_local driver against a real nginx with two SNI server blocks."""

import json
import time

import pytest

from deployments.drivers import DriverError, get_driver
from deployments.drivers.base import Bundle
from deployments.drivers.nginx_local import NginxLocalDriver
from deployments.tlsprobe import probe
from tests.realservices import require
from tests.realservices.certs import CertKey, make_ca, make_intermediate, make_leaf
from tests.realservices.nginx import Nginx, ServerBlock

HOST = "127.0.0.1"


def bundle_of(cert: CertKey, key: CertKey | None = None) -> Bundle:
    return Bundle(
        name=cert.cert.subject.rfc4514_string(),
        sha256=cert.sha256,
        cert_pem=cert.cert_pem,
        chain_pem=cert.fullchain_pem[len(cert.cert_pem) :],
        key_pem=(key or cert).key_pem,
    )


def served(port: int, name: str, expected: str, timeout: float = 5.0) -> str:
    """The leaf served for name once it is `expected` five times in a row (reload is async)."""
    deadline = time.monotonic() + timeout
    streak, last = 0, None
    while time.monotonic() < deadline:
        last = probe(HOST, port, name, timeout=2).leaf_sha256
        streak = streak + 1 if last == expected else 0
        if streak == 5:
            break
        time.sleep(0.02)
    return last


@pytest.fixture
def ca():
    return make_intermediate(make_ca())


@pytest.fixture
def site(tmp_path, ca):
    """nginx serving a.test (default) and w.test from files in tmp_path/certs."""
    a, w = make_leaf(ca, ["a.test"]), make_leaf(ca, ["w.test"])
    a_cert, a_key = a.write(tmp_path / "certs", "a")
    servers = [
        ServerBlock(["a.test"], a_cert, a_key, default=True),
        ServerBlock(["w.test"], *w.write(tmp_path / "certs", "w")),
    ]
    with require(Nginx, tmp_path / "nginx", servers) as nginx:
        yield {"nginx": nginx, "a": a, "w": w, "cert": a_cert, "key": a_key}


def options(site, **overrides) -> dict:
    return {
        "fullchain_path": str(site["cert"]),
        "key_path": str(site["key"]),
        "test_command": site["nginx"].test_command(),
        "reload_command": site["nginx"].reload_command(),
        **overrides,
    }


def test_push_installs_the_certificate_and_nginx_serves_it_for_its_name_only(site, ca):
    renewed = make_leaf(ca, ["a.test"])
    driver = get_driver("nginx_local", options(site))

    result = driver.push(bundle_of(renewed))

    port = site["nginx"].port
    assert served(port, "a.test", renewed.sha256) == renewed.sha256
    assert probe(HOST, port, "w.test").leaf_sha256 == site["w"].sha256
    assert site["cert"].read_bytes() == renewed.fullchain_pem
    assert site["key"].read_bytes() == renewed.key_pem
    assert site["cert"].stat().st_mode & 0o777 == 0o644
    assert site["key"].stat().st_mode & 0o777 == 0o600
    assert [c["exit_code"] for c in result.details["commands"]] == [0, 0]
    assert "reloaded" in result.summary
    assert b"PRIVATE KEY" not in json.dumps(result.details).encode()
    assert not list(site["cert"].parent.glob(".*.tmp"))


def test_a_key_that_does_not_match_fails_nginx_t_and_restores_the_previous_files(site, ca):
    before = site["cert"].read_bytes(), site["key"].read_bytes()
    mismatched = bundle_of(make_leaf(ca, ["a.test"]), key=make_leaf(ca, ["other.test"]))

    with pytest.raises(DriverError) as failed:
        get_driver("nginx_local", options(site)).push(mismatched)

    assert failed.value.permanent
    assert "test command failed" in failed.value.message
    assert "key values mismatch" in failed.value.message  # nginx's own words
    assert (site["cert"].read_bytes(), site["key"].read_bytes()) == before
    assert failed.value.details["restored"] is True
    assert len(failed.value.details["commands"]) == 1  # no reload
    assert probe(HOST, site["nginx"].port, "a.test").leaf_sha256 == site["a"].sha256


def test_a_failing_reload_puts_the_previous_files_back(site, ca):
    before = site["cert"].read_bytes(), site["key"].read_bytes()
    driver = get_driver("nginx_local", options(site, reload_command="false"))

    with pytest.raises(DriverError, match="reload command failed") as failed:
        driver.push(bundle_of(make_leaf(ca, ["a.test"])))

    assert failed.value.permanent
    assert (site["cert"].read_bytes(), site["key"].read_bytes()) == before
    assert [c["exit_code"] for c in failed.value.details["commands"]] == [0, 1]
    assert probe(HOST, site["nginx"].port, "a.test").leaf_sha256 == site["a"].sha256


def test_files_that_did_not_exist_before_are_removed_when_the_test_fails(tmp_path, ca):
    cert, key = tmp_path / "new.pem", tmp_path / "new.key"
    driver = NginxLocalDriver(
        {
            "fullchain_path": str(cert),
            "key_path": str(key),
            "test_command": ["sh", "-c", "echo 'config broken' >&2; exit 3"],
            "reload_command": "true",
        }
    )
    with pytest.raises(DriverError) as failed:
        driver.push(bundle_of(make_leaf(ca, ["a.test"])))
    assert "config broken" in failed.value.message
    assert failed.value.details["commands"][0]["exit_code"] == 3
    assert not cert.exists() and not key.exists()
    assert list(tmp_path.iterdir()) == []


def test_a_command_that_hangs_is_stopped_by_the_timeout_and_may_be_retried(tmp_path, ca):
    driver = NginxLocalDriver(
        {
            "fullchain_path": str(tmp_path / "a.pem"),
            "key_path": str(tmp_path / "a.key"),
            "test_command": "sleep 5",
            "reload_command": "true",
            "timeout": 1,
        }
    )
    started = time.monotonic()
    with pytest.raises(DriverError, match="did not finish within 1 s") as failed:
        driver.push(bundle_of(make_leaf(ca, ["a.test"])))
    assert time.monotonic() - started < 3
    assert not failed.value.permanent


def test_a_bundle_without_its_key_is_refused(tmp_path, ca):
    driver = NginxLocalDriver(
        {
            "fullchain_path": str(tmp_path / "a.pem"),
            "key_path": str(tmp_path / "a.key"),
            "test_command": "true",
            "reload_command": "true",
        }
    )
    leaf = make_leaf(ca, ["a.test"])
    withheld = Bundle("a", leaf.sha256, leaf.cert_pem, b"", None)
    with pytest.raises(DriverError, match="private key") as failed:
        driver.push(withheld)
    assert failed.value.permanent
    assert not (tmp_path / "a.pem").exists()


def test_a_directory_that_does_not_exist_is_a_permanent_error(tmp_path, ca):
    driver = NginxLocalDriver(
        {
            "fullchain_path": str(tmp_path / "missing" / "a.pem"),
            "key_path": str(tmp_path / "missing" / "a.key"),
            "test_command": "true",
            "reload_command": "true",
        }
    )
    with pytest.raises(DriverError, match="Cannot write") as failed:
        driver.push(bundle_of(make_leaf(ca, ["a.test"])))
    assert failed.value.permanent


GOOD = {
    "fullchain_path": "/etc/ssl/a.pem",
    "key_path": "/etc/ssl/a.key",
    "test_command": "nginx -t",
    "reload_command": ["nginx", "-s", "reload"],
}


def test_string_commands_are_split_into_arguments():
    parsed = NginxLocalDriver.parse_options({**GOOD, "test_command": "nginx -t -c '/etc/my nginx'"})
    assert parsed.test_command == ["nginx", "-t", "-c", "/etc/my nginx"]
    assert parsed.reload_command == ["nginx", "-s", "reload"]
    assert "/etc/ssl/a.pem" in NginxLocalDriver(GOOD).describe()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fullchain_path": None}, "fullchain_path is required"),
        ({"key_path": ""}, "key_path is required"),
        ({"key_path": "a.key"}, "key_path must be an absolute path"),
        ({"test_command": 42}, "test_command must be a list of arguments or a string"),
        ({"reload_command": ["nginx", 1]}, "reload_command must be a list of arguments"),
        ({"reload_command": "'unclosed"}, "reload_command cannot be split"),
        ({"timeout": "10"}, "timeout must be a number"),
        ({"key_path": "/etc/ssl/a.pem"}, "key_path must differ"),
        ({"reload_cmd": "x"}, "Unknown option 'reload_cmd'"),
    ],
)
def test_bad_options_are_refused_naming_the_field(change, message):
    with pytest.raises(DriverError, match=message) as refused:
        NginxLocalDriver.parse_options({**GOOD, **change})
    assert refused.value.permanent


def test_options_must_be_an_object():
    with pytest.raises(DriverError, match="must be a JSON object"):
        NginxLocalDriver.parse_options(["nope"])
