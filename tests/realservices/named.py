"""BIND9 as the primary of one zone that RFC 2136 updates signed with TSIG may change."""

import base64
import secrets
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsigkeyring

from .ports import LOOPBACK, free_udp_tcp_port
from .process import Service, spawn, stop_process, wait_ready, which


class Bind9(Service):
    """named on a free loopback UDP+TCP port, primary for `zone` (every name has A 127.0.0.1).

    Updates signed with the TSIG key `tsig_name` may change any name in the zone.
    """

    tsig_name = "update-key"
    tsig_algorithm = "hmac-sha256"

    def __init__(
        self,
        directory: Path,
        zone: str = "test.",
        *,
        port: int | None = None,
        timeout: float = 10.0,
    ):
        self.binary = which("named", "bind9")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.zone = zone if zone.endswith(".") else f"{zone}."
        self.host = LOOPBACK
        self.port = port or free_udp_tcp_port()
        self.nameserver = f"{self.host}:{self.port}"
        self.tsig_secret = base64.b64encode(secrets.token_bytes(32)).decode()
        self.timeout = timeout
        self.config_path = self.directory / "named.conf"
        self.zone_path = self.directory / f"{self.zone.rstrip('.') or 'root'}.zone"
        self.pid_path = self.directory / "named.pid"
        self.log_path = self.directory / "named.log"
        self._write_files()
        self._proc = None

    @property
    def keyring(self) -> dict:
        """The TSIG keyring dnspython's UpdateMessage takes."""
        return dns.tsigkeyring.from_text({self.tsig_name: (self.tsig_algorithm, self.tsig_secret)})

    def _write_files(self) -> None:
        d = self.directory
        self.config_path.write_text(
            f"""options {{
    directory "{d}";
    pid-file "{self.pid_path}";
    session-keyfile "{d}/session.key";
    listen-on port {self.port} {{ {self.host}; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
}};
controls {{ }};  // no rndc listener on :953
key "{self.tsig_name}" {{ algorithm {self.tsig_algorithm}; secret "{self.tsig_secret}"; }};
zone "{self.zone}" {{
    type primary;
    file "{self.zone_path}";
    update-policy {{ grant {self.tsig_name} zonesub ANY; }};
}};
"""
        )
        self.zone_path.write_text(
            f"""$TTL 5
@   IN SOA ns.{self.zone} admin.{self.zone} ( 1 60 60 600 5 )
@   IN NS  ns.{self.zone}
ns  IN A   127.0.0.1
*   IN A   127.0.0.1
"""
        )

    def _start(self) -> None:
        # The journal (.jnl) of dynamic updates goes next to the zone file, in `directory`.
        args = [self.binary, "-g", "-4", "-c", str(self.config_path)]
        self._proc = spawn(args, self.log_path, cwd=self.directory)
        wait_ready(
            self._answers_soa,
            what="named",
            timeout=self.timeout,
            proc=self._proc,
            log_path=self.log_path,
        )

    def _answers_soa(self) -> bool:
        query = dns.message.make_query(self.zone, dns.rdatatype.SOA)
        try:
            response = dns.query.udp(query, self.host, port=self.port, timeout=0.2)
        except (dns.exception.DNSException, OSError):
            return False
        return response.rcode() == dns.rcode.NOERROR and bool(response.answer)

    def query_txt(self, name: str) -> list[str]:
        """The TXT values of `name` as this server answers them now ([] if none)."""
        fqdn = name if name.endswith(".") else f"{name}."
        query = dns.message.make_query(fqdn, dns.rdatatype.TXT)
        response, _ = dns.query.udp_with_fallback(query, self.host, port=self.port, timeout=5)
        return [
            b"".join(rdata.strings).decode()
            for rrset in response.answer
            if rrset.rdtype == dns.rdatatype.TXT
            for rdata in rrset
        ]

    def stop(self) -> None:
        stop_process(self._proc)
        self._proc = None
