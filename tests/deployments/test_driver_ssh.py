"""ssh driver against a real sshd on a high port with its own host key."""

import json
import time

import pytest
from cryptography.hazmat.primitives import serialization

from deployments.drivers import DriverError, get_driver
from deployments.drivers.base import Bundle
from deployments.drivers.ssh import SshDriver, fetch_host_key, load_private_key, parse_host_key
from tests.realservices import require
from tests.realservices.certs import CertKey, make_ca, make_leaf
from tests.realservices.ports import free_port
from tests.realservices.sshd import Sshd


def bundle_of(cert: CertKey) -> Bundle:
    return Bundle(
        name="a.test",
        sha256=cert.sha256,
        cert_pem=cert.cert_pem,
        chain_pem=cert.fullchain_pem[len(cert.cert_pem) :],
        key_pem=cert.key_pem,
    )


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    with require(Sshd, tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture
def leaf():
    return make_leaf(make_ca(), ["a.test"])


@pytest.fixture
def remote(tmp_path):
    directory = tmp_path / "remote"
    directory.mkdir()
    return directory


def options(sshd, remote, **overrides) -> dict:
    return {
        "host": sshd.host,
        "port": sshd.port,
        "username": sshd.username,
        "fullchain_path": str(remote / "fullchain.pem"),
        "key_path": str(remote / "privkey.pem"),
        "check_command": "test -s " + str(remote / "fullchain.pem"),
        "reload_command": f"touch {remote / 'reloaded'}",
        "host_key": sshd.host_key_public,
        **overrides,
    }


def credentials(sshd) -> dict:
    return {"private_key": sshd.client_key_path.read_text()}


def test_push_uploads_with_the_right_modes_and_runs_check_and_reload(sshd, remote, leaf):
    driver = get_driver("ssh", options(sshd, remote), credentials(sshd))

    result = driver.push(bundle_of(leaf))

    assert (remote / "fullchain.pem").read_bytes() == leaf.fullchain_pem
    assert (remote / "privkey.pem").read_bytes() == leaf.key_pem
    assert (remote / "fullchain.pem").stat().st_mode & 0o777 == 0o644
    assert (remote / "privkey.pem").stat().st_mode & 0o777 == 0o600
    assert (remote / "reloaded").exists()
    assert sorted(p.name for p in remote.iterdir()) == ["fullchain.pem", "privkey.pem", "reloaded"]
    assert [c["exit_code"] for c in result.details["commands"]] == [0, 0]
    assert b"PRIVATE KEY" not in json.dumps(result.details).encode()


def test_a_pkcs8_client_key_with_a_passphrase_logs_in(sshd, remote, leaf):
    key = serialization.load_ssh_private_key(sshd.client_key_path.read_bytes(), None)
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"s3cret"),
    ).decode()
    creds = {"private_key": pkcs8, "passphrase": "s3cret"}
    SshDriver(options(sshd, remote, check_command=None), creds).push(bundle_of(leaf))
    assert (remote / "privkey.pem").read_bytes() == leaf.key_pem
    with pytest.raises(DriverError, match="cannot be read") as refused:
        load_private_key(pkcs8, "wrong")
    assert refused.value.permanent


def test_a_failing_check_restores_the_previous_files_and_does_not_reload(sshd, remote, leaf):
    old = make_leaf(make_ca(), ["a.test"])
    (remote / "fullchain.pem").write_bytes(old.fullchain_pem)
    (remote / "privkey.pem").write_bytes(old.key_pem)
    (remote / "privkey.pem").chmod(0o640)
    driver = SshDriver(
        options(sshd, remote, check_command="echo 'emerg: bad config' >&2; exit 1"),
        credentials(sshd),
    )

    with pytest.raises(DriverError, match=r"check command on 127\.0\.0\.1 failed") as failed:
        driver.push(bundle_of(leaf))

    assert failed.value.permanent
    assert "emerg: bad config" in failed.value.message
    assert (remote / "fullchain.pem").read_bytes() == old.fullchain_pem
    assert (remote / "privkey.pem").read_bytes() == old.key_pem
    assert (remote / "privkey.pem").stat().st_mode & 0o777 == 0o640
    assert not (remote / "reloaded").exists()
    assert failed.value.details["restored"] is True
    assert sorted(p.name for p in remote.iterdir()) == ["fullchain.pem", "privkey.pem"]


def test_a_failing_reload_removes_files_that_did_not_exist(sshd, remote, leaf):
    driver = SshDriver(options(sshd, remote, reload_command="exit 7"), credentials(sshd))
    with pytest.raises(DriverError, match="reload command") as failed:
        driver.push(bundle_of(leaf))
    assert failed.value.details["commands"][-1]["exit_code"] == 7
    assert list(remote.iterdir()) == []


def test_a_changed_host_key_is_refused_before_anything_is_uploaded(sshd, remote, leaf, tmp_path):
    other = Sshd(tmp_path / "other")  # its keys only; never started
    driver = SshDriver(options(sshd, remote, host_key=other.host_key_public), credentials(sshd))

    with pytest.raises(DriverError) as refused:
        driver.push(bundle_of(leaf))

    pinned = parse_host_key(other.host_key_public).fingerprint
    presented = fetch_host_key(sshd.host, sshd.port).fingerprint_sha256
    assert refused.value.permanent
    assert refused.value.message == (
        f"The SSH host key of 127.0.0.1 changed: expected {pinned}, got {presented}; "
        "refusing to connect."
    )
    assert list(remote.iterdir()) == []


def test_without_a_pinned_key_the_fingerprint_to_approve_is_given(sshd, remote, leaf):
    seen = fetch_host_key(sshd.host, sshd.port, timeout=5)
    assert seen.line == sshd.host_key_public
    assert seen.fingerprint_sha256.startswith("SHA256:")

    driver = SshDriver(options(sshd, remote, host_key=None), credentials(sshd))
    with pytest.raises(DriverError, match="not approved yet") as refused:
        driver.push(bundle_of(leaf))
    assert refused.value.permanent
    assert seen.fingerprint_sha256 in refused.value.message
    assert list(remote.iterdir()) == []


def test_an_unreachable_port_is_a_temporary_error(remote, leaf, sshd):
    port = free_port()
    driver = SshDriver(options(sshd, remote, port=port), credentials(sshd))
    started = time.monotonic()
    with pytest.raises(DriverError, match=f"Cannot reach 127.0.0.1:{port}: ") as failed:
        driver.push(bundle_of(leaf))
    assert not failed.value.permanent
    assert time.monotonic() - started < 5
    with pytest.raises(DriverError, match=f"Cannot reach 127.0.0.1:{port}"):
        fetch_host_key("127.0.0.1", port)


def test_a_client_key_the_server_does_not_accept_is_a_permanent_error(sshd, remote, leaf, tmp_path):
    stranger = Sshd(tmp_path / "stranger").client_key_path.read_text()
    driver = SshDriver(options(sshd, remote), {"private_key": stranger})
    with pytest.raises(DriverError, match=r"SSH login as .* was refused") as refused:
        driver.push(bundle_of(leaf))
    assert refused.value.permanent


def test_missing_credentials_are_a_permanent_error(sshd, remote, leaf):
    with pytest.raises(DriverError, match="SSH credentials are missing") as refused:
        SshDriver(options(sshd, remote)).push(bundle_of(leaf))
    assert refused.value.permanent


GOOD = {
    "host": "web1.example.org",
    "username": "deploy",
    "fullchain_path": "/etc/ssl/a.pem",
    "key_path": "/etc/ssl/a.key",
    "reload_command": ["systemctl", "reload", "nginx"],
}


def test_options_take_defaults_and_keep_shell_commands_as_written():
    parsed = SshDriver.parse_options({**GOOD, "check_command": "nginx -t && echo ok"})
    assert parsed.port == 22
    assert parsed.check_command == "nginx -t && echo ok"
    assert parsed.reload_command == "systemctl reload nginx"
    assert parsed.host_key is None
    assert SshDriver(GOOD).describe().startswith("deploy@web1.example.org:22: /etc/ssl/a.pem")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"host": None}, "host is required"),
        ({"username": ""}, "username is required"),
        ({"port": 70000}, "port must be a whole number from 1 to 65535"),
        ({"port": "22"}, "port must be a whole number"),
        ({"fullchain_path": "a.pem"}, "fullchain_path must be an absolute path"),
        ({"reload_command": None}, "reload_command is required"),
        ({"check_command": 5}, "check_command must be a list of arguments or a string"),
        ({"host_key": "not a key"}, "host_key must be an OpenSSH public key line"),
        ({"host_key": "ssh-ed25519 !!!"}, "host_key must be an OpenSSH public key line"),
    ],
)
def test_bad_options_are_refused_naming_the_field(change, message):
    with pytest.raises(DriverError, match=message) as refused:
        SshDriver.parse_options({**GOOD, **change})
    assert refused.value.permanent
