"""haproxy driver against a real HAProxy through its runtime API socket."""

import json

import pytest

from deployments.drivers import DriverError, get_driver
from deployments.drivers.base import Bundle
from deployments.drivers.haproxy import HAProxyDriver
from deployments.tlsprobe import probe
from tests.realservices import require
from tests.realservices.certs import CertKey, make_ca, make_intermediate, make_leaf
from tests.realservices.haproxy import HAProxy
from tests.realservices.ports import free_port
from tests.realservices.process import read_pid

HOST = "127.0.0.1"


def bundle_of(cert: CertKey, key: CertKey | None = None) -> Bundle:
    return Bundle(
        name="a.test",
        sha256=cert.sha256,
        cert_pem=cert.cert_pem,
        chain_pem=cert.fullchain_pem[len(cert.cert_pem) :],
        key_pem=(key or cert).key_pem,
    )


@pytest.fixture
def ca():
    return make_intermediate(make_ca())


@pytest.fixture
def lb(tmp_path, ca):
    a, w = make_leaf(ca, ["a.test"]), make_leaf(ca, ["w.test"])
    a_pem = a.write_combined(tmp_path / "a.pem")
    w_pem = w.write_combined(tmp_path / "w.pem")
    with require(HAProxy, tmp_path, [a_pem, w_pem]) as haproxy:
        yield {"haproxy": haproxy, "a": a, "w": w, "a_pem": a_pem}


def test_runtime_update_serves_the_new_certificate_without_a_restart(lb, ca):
    haproxy = lb["haproxy"]
    pid = read_pid(haproxy.pid_path)
    renewed = make_leaf(ca, ["a.test"])
    driver = get_driver(
        "haproxy", {"socket": str(haproxy.socket_path), "crt_path": str(lb["a_pem"])}
    )

    result = driver.push(bundle_of(renewed))

    served = probe(HOST, haproxy.port, "a.test")
    assert served.leaf_sha256 == renewed.sha256
    assert len(served.chain_der) == 2
    assert probe(HOST, haproxy.port, "w.test").leaf_sha256 == lb["w"].sha256
    assert read_pid(haproxy.pid_path) == pid
    assert [c["command"].split()[0] for c in result.details["commands"]] == ["set", "commit"]
    assert "Success!" in result.details["commands"][1]["answer"]
    assert b"PRIVATE KEY" not in json.dumps(result.details).encode()
    # Memory only unless write_file: the file on disk still holds the old certificate.
    assert lb["a_pem"].read_bytes() == lb["a"].fullchain_pem + lb["a"].key_pem


def test_write_file_also_stores_the_combined_pem_for_the_next_restart(lb, ca):
    renewed = make_leaf(ca, ["a.test"])
    driver = HAProxyDriver(
        {
            "socket": str(lb["haproxy"].socket_path),
            "crt_path": str(lb["a_pem"]),
            "write_file": True,
        }
    )
    driver.push(bundle_of(renewed))
    assert probe(HOST, lb["haproxy"].port, "a.test").leaf_sha256 == renewed.sha256
    assert lb["a_pem"].read_bytes() == renewed.fullchain_pem + renewed.key_pem
    assert lb["a_pem"].stat().st_mode & 0o777 == 0o600


class HAProxyWithTcpApi(HAProxy):
    """The same HAProxy with its runtime API also on a TCP port."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.api_port = free_port()

    def write_config(self) -> None:
        super().write_config()
        config = self.config_path.read_text()
        tcp = f"    stats socket ipv4@{HOST}:{self.api_port} level admin\n"
        self.config_path.write_text(config.replace("global\n", f"global\n{tcp}", 1))


def test_the_runtime_api_also_works_over_tcp(tmp_path, ca):
    a = make_leaf(ca, ["a.test"])
    a_pem = a.write_combined(tmp_path / "a.pem")
    with require(HAProxyWithTcpApi, tmp_path, [a_pem]) as haproxy:
        renewed = make_leaf(ca, ["a.test"])
        driver = HAProxyDriver({"address": f"{HOST}:{haproxy.api_port}", "crt_path": str(a_pem)})
        driver.push(bundle_of(renewed))
        assert probe(HOST, haproxy.port, "a.test").leaf_sha256 == renewed.sha256


def test_a_key_that_does_not_match_is_refused_with_haproxys_answer_and_aborted(lb, ca):
    before = lb["a_pem"].read_bytes()
    driver = HAProxyDriver(
        {
            "socket": str(lb["haproxy"].socket_path),
            "crt_path": str(lb["a_pem"]),
            "write_file": True,
        }
    )
    mismatched = bundle_of(make_leaf(ca, ["a.test"]), key=make_leaf(ca, ["x.test"]))

    with pytest.raises(DriverError, match="HAProxy refused the certificate") as refused:
        driver.push(mismatched)

    assert refused.value.permanent
    assert "inconsistencies between private key and certificate" in refused.value.message
    commands = [c["command"].split()[0] for c in refused.value.details["commands"]]
    assert commands == ["set", "commit", "abort"]
    assert probe(HOST, lb["haproxy"].port, "a.test").leaf_sha256 == lb["a"].sha256
    assert lb["a_pem"].read_bytes() == before
    assert refused.value.details["file"]["restored"] is True


def test_a_bundle_that_is_not_pem_is_refused_at_set(lb, ca):
    leaf = make_leaf(ca, ["a.test"])
    garbage = Bundle("a.test", leaf.sha256, b"-----BEGIN CERTIFICATE-----\nAAAA\n", b"", b"x")
    driver = HAProxyDriver({"socket": str(lb["haproxy"].socket_path), "crt_path": str(lb["a_pem"])})
    with pytest.raises(DriverError, match="HAProxy refused the certificate") as refused:
        driver.push(garbage)
    assert [c["command"].split()[0] for c in refused.value.details["commands"]] == ["set", "abort"]
    assert probe(HOST, lb["haproxy"].port, "a.test").leaf_sha256 == lb["a"].sha256


def test_a_certificate_name_haproxy_does_not_know_is_refused(lb, ca):
    driver = HAProxyDriver(
        {"socket": str(lb["haproxy"].socket_path), "crt_path": "/etc/haproxy/unknown.pem"}
    )
    with pytest.raises(DriverError, match="not referenced by the configuration") as refused:
        driver.push(bundle_of(make_leaf(ca, ["a.test"])))
    assert refused.value.permanent


def test_an_unreachable_runtime_api_may_be_retried(tmp_path, ca):
    for options in (
        {"socket": str(tmp_path / "none.sock"), "crt_path": "/x.pem"},
        {"address": f"{HOST}:{free_port()}", "crt_path": "/x.pem"},
    ):
        with pytest.raises(DriverError, match="Cannot reach the HAProxy runtime API") as failed:
            HAProxyDriver(options).push(bundle_of(make_leaf(ca, ["a.test"])))
        assert not failed.value.permanent


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"socket": "/run/haproxy.sock"}, "crt_path is required"),
        ({"crt_path": "/a.pem"}, "Give either socket"),
        (
            {"crt_path": "/a.pem", "socket": "/s.sock", "address": "127.0.0.1:1"},
            "Give either socket",
        ),
        ({"crt_path": "/a.pem", "address": "localhost"}, "address must be host:port"),
        ({"crt_path": "/a.pem", "socket": "run/h.sock"}, "socket must be an absolute path"),
        ({"crt_path": "a.pem", "socket": "/s", "write_file": True}, "crt_path must be an abs"),
        ({"crt_path": "/a.pem", "socket": "/s", "write_file": "yes"}, "write_file must be true"),
    ],
)
def test_bad_options_are_refused_naming_the_field(options, message):
    with pytest.raises(DriverError, match=message) as refused:
        HAProxyDriver.parse_options(options)
    assert refused.value.permanent


def test_describe_names_the_endpoint_and_certificate():
    driver = HAProxyDriver({"address": "[::1]:9999", "crt_path": "/etc/haproxy/a.pem"})
    assert driver.options.address == ("::1", 9999)
    assert driver.describe() == "HAProxy runtime API at ::1:9999: certificate /etc/haproxy/a.pem"
