"""Pebble, the ACME test CA, with pebble-challtestsrv as its DNS (or a BIND9 of the test's)."""

import json
import ssl
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .certs import make_ca, make_leaf
from .ports import LOOPBACK, free_port, free_udp_tcp_port, port_open
from .process import Service, spawn, stop_process, wait_ready, which

# Deterministic by default: no random validation sleep, no rejected nonces, no authz reuse.
DEFAULT_ENV = {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}


class Pebble(Service):
    """pebble (+ pebble-challtestsrv unless `dns_server` is given) on free loopback ports.

    `env` overrides `DEFAULT_ENV`; a value of None removes the variable, giving Pebble's own
    default (e.g. `{"PEBBLE_AUTHZREUSE": None}` for 50 % authz reuse). `eab_keys` maps key IDs
    to base64url HMAC keys and makes external account binding required.

    The WFE certificate (`ca_bundle_path`) stays the same across restarts, but Pebble makes a
    new issuing root and intermediate at every start: fetch `roots()` after starting.
    """

    def __init__(
        self,
        directory: Path,
        *,
        env: Mapping[str, str | None] | None = None,
        dns_server: str | None = None,
        eab_keys: Mapping[str, str] | None = None,
        timeout: float = 15.0,
    ):
        self.binary = which("pebble", "pebble")
        self.challtestsrv_binary = None if dns_server else which("pebble-challtestsrv", "pebble")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.timeout = timeout
        merged = {**DEFAULT_ENV, **(env or {})}
        self.env = {name: value for name, value in merged.items() if value is not None}
        self.eab_keys = dict(eab_keys or {})

        self.acme_port, self.management_port = free_port(), free_port()
        self.http01_port, self.tlsalpn01_port = free_port(), free_port()
        self.directory_url = f"https://{LOOPBACK}:{self.acme_port}/dir"
        self.management_url = f"https://{LOOPBACK}:{self.management_port}"
        if dns_server is None:
            self.dns_port, self.challtestsrv_port = free_udp_tcp_port(), free_port()
            self.dns_server = f"{LOOPBACK}:{self.dns_port}"
            self.challtestsrv_url: str | None = f"http://{LOOPBACK}:{self.challtestsrv_port}"
        else:
            self.dns_server = dns_server
            self.challtestsrv_url = None

        self.ca_bundle_path = self.directory / "wfe-ca.pem"
        self.config_path = self.directory / "pebble-config.json"
        self.log_path = self.directory / "pebble.log"
        self.challtestsrv_log_path = self.directory / "challtestsrv.log"
        self._write_wfe_certificate()
        self._write_config()
        self._pebble = None
        self._challtestsrv = None

    def _write_wfe_certificate(self) -> None:
        # Debian's pebble ships no test certificates: make a CA for its HTTPS endpoints.
        ca = make_ca("CertConsole Test Pebble WFE CA")
        leaf = make_leaf(ca, ["localhost", "pebble"], ips=["127.0.0.1", "::1"])
        self.ca_bundle_path.write_bytes(ca.cert_pem)
        leaf.write(self.directory, "wfe")

    def _write_config(self) -> None:
        pebble: dict[str, Any] = {
            "listenAddress": f"{LOOPBACK}:{self.acme_port}",
            "managementListenAddress": f"{LOOPBACK}:{self.management_port}",
            "certificate": str(self.directory / "wfe.pem"),
            "privateKey": str(self.directory / "wfe.key"),
            "httpPort": self.http01_port,
            "tlsPort": self.tlsalpn01_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": bool(self.eab_keys),
        }
        if self.eab_keys:
            pebble["externalAccountMACKeys"] = self.eab_keys
        self.config_path.write_text(json.dumps({"pebble": pebble}, indent=2))

    def _start(self) -> None:
        if self.challtestsrv_binary is not None and self._challtestsrv is None:
            self._start_challtestsrv()
        self._start_pebble()

    def _start_challtestsrv(self) -> None:
        # Every name resolves to 127.0.0.1 and has no AAAA, so the VA never tries ::1.
        args = [self.challtestsrv_binary, "-dns01", self.dns_server]
        args += ["-management", f"{LOOPBACK}:{self.challtestsrv_port}"]
        args += ["-http01", "", "-https01", "", "-tlsalpn01", ""]
        args += ["-defaultIPv4", LOOPBACK, "-defaultIPv6", ""]
        self._challtestsrv = spawn(args, self.challtestsrv_log_path)
        wait_ready(
            lambda: port_open(LOOPBACK, self.challtestsrv_port),
            what="pebble-challtestsrv",
            timeout=self.timeout,
            proc=self._challtestsrv,
            log_path=self.challtestsrv_log_path,
        )

    def _start_pebble(self) -> None:
        args = [self.binary, "-config", str(self.config_path), "-dnsserver", self.dns_server]
        self._pebble = spawn(args, self.log_path, env=self.env, cwd=self.directory)
        wait_ready(
            lambda: (
                port_open(LOOPBACK, self.acme_port) and port_open(LOOPBACK, self.management_port)
            ),
            what="pebble",
            timeout=self.timeout,
            proc=self._pebble,
            log_path=self.log_path,
        )

    def stop(self) -> None:
        stop_process(self._pebble)
        self._pebble = None
        stop_process(self._challtestsrv)
        self._challtestsrv = None

    def restart(self) -> None:
        """Restart the CA alone on the same ports (challtestsrv and its records stay)."""
        stop_process(self._pebble)
        self._pebble = None
        self._start_pebble()

    # Pebble's management API (HTTPS, signed by the WFE CA)

    def _management_get(self, path: str) -> bytes:
        context = ssl.create_default_context(cafile=str(self.ca_bundle_path))
        with urllib.request.urlopen(
            f"{self.management_url}{path}", context=context, timeout=5
        ) as r:
            return r.read()

    def roots(self, index: int = 0) -> bytes:
        """PEM of the current issuing root (changes at every start)."""
        return self._management_get(f"/roots/{index}")

    def intermediates(self, index: int = 0) -> bytes:
        return self._management_get(f"/intermediates/{index}")

    # pebble-challtestsrv's management API (plain HTTP)

    def _challtestsrv_post(self, path: str, payload: dict[str, Any]) -> None:
        if self.challtestsrv_url is None:
            raise RuntimeError(f"no pebble-challtestsrv: this Pebble uses {self.dns_server}")
        request = urllib.request.Request(
            f"{self.challtestsrv_url}{path}",
            data=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()

    def set_txt(self, host: str, value: str) -> None:
        """Add a TXT value (values accumulate: clear them after each validation)."""
        self._challtestsrv_post("/set-txt", {"host": _fqdn(host), "value": value})

    def clear_txt(self, host: str) -> None:
        self._challtestsrv_post("/clear-txt", {"host": _fqdn(host)})

    def add_a(self, host: str, ip: str) -> None:
        self._challtestsrv_post("/add-a", {"host": _fqdn(host), "addresses": [ip]})


def _fqdn(host: str) -> str:
    return host if host.endswith(".") else f"{host}."
