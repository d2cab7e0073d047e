"""DNS-01 through RFC 2136 dynamic updates signed with TSIG (BIND, Knot, PowerDNS...)."""

import binascii
import socket

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.tsig
import dns.tsigkeyring
import dns.update

from . import DcvError
from .dns_check import absolute

TSIG_ALGORITHMS = ("hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1")


class Rfc2136Provider:
    """Adds and deletes one TXT value at a time on a primary server that allows it."""

    def __init__(
        self,
        server: str,
        port: int = 53,
        zone: str = "",
        tsig_name: str = "",
        tsig_secret: str = "",
        tsig_algorithm: str = "hmac-sha256",
        timeout: float = 10,
        ttl: int = 60,
    ):
        if tsig_algorithm not in TSIG_ALGORITHMS:
            raise DcvError(f"Unknown TSIG algorithm {tsig_algorithm!r}", permanent=True)
        if not tsig_name or not tsig_secret:
            raise DcvError("RFC 2136 updates need a TSIG key name and secret", permanent=True)
        try:
            self.keyring = dns.tsigkeyring.from_text({tsig_name: (tsig_algorithm, tsig_secret)})
        except (binascii.Error, ValueError) as exc:
            raise DcvError("The TSIG secret is not valid base64", permanent=True) from exc
        self.server = server
        self.port = int(port)
        self.zone = zone
        self.tsig_name = tsig_name
        self.tsig_algorithm = tsig_algorithm
        self.timeout = timeout
        self.ttl = ttl

    def _address(self) -> str:
        try:
            return socket.getaddrinfo(self.server, self.port, proto=socket.IPPROTO_TCP)[0][4][0]
        except OSError as exc:
            raise DcvError(f"Cannot resolve the DNS server {self.server}: {exc}") from exc

    def zone_for(self, fqdn: str) -> dns.name.Name:
        """The zone holding `fqdn` on this server (the configured one, else an SOA lookup)."""
        if self.zone:
            return absolute(self.zone)
        name = absolute(fqdn)
        message = dns.message.make_query(name, dns.rdatatype.SOA)
        try:
            response = dns.query.tcp(message, self._address(), port=self.port, timeout=self.timeout)
        except (dns.exception.DNSException, OSError) as exc:
            raise DcvError(f"SOA lookup for {name} at {self.server} failed: {exc}") from exc
        for rrset in (*response.answer, *response.authority):
            if rrset.rdtype == dns.rdatatype.SOA and name.is_subdomain(rrset.name):
                return rrset.name
        raise DcvError(f"{self.server} is not authoritative for {name}", permanent=True)

    def present(self, fqdn: str, value: str) -> None:
        self._update(fqdn, value, add=True)

    def cleanup(self, fqdn: str, value: str) -> None:
        self._update(fqdn, value, add=False)

    def _update(self, fqdn: str, value: str, *, add: bool) -> None:
        name = absolute(fqdn)
        zone = self.zone_for(fqdn)
        if not name.is_subdomain(zone):
            raise DcvError(f"{name} is not in the zone {zone}", permanent=True)
        rdata = dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, [value.encode()])
        update = dns.update.UpdateMessage(
            zone, keyring=self.keyring, keyname=self.tsig_name, keyalgorithm=self.tsig_algorithm
        )
        if add:
            update.add(name, self.ttl, rdata)
        else:
            update.delete(name, rdata)
        action = "add" if add else "delete"
        try:
            response = dns.query.tcp(update, self._address(), port=self.port, timeout=self.timeout)
        except dns.tsig.PeerError as exc:
            raise DcvError(
                f"{self.server} rejected the TSIG key {self.tsig_name!r}: {exc}", permanent=True
            ) from exc
        except (dns.exception.DNSException, OSError) as exc:
            raise DcvError(f"Cannot {action} the TXT record at {self.server}: {exc}") from exc
        rcode = response.rcode()
        if rcode != dns.rcode.NOERROR:
            text = dns.rcode.to_text(rcode)
            raise DcvError(
                f"{self.server} refused to {action} the TXT record for {name}: {text}"
                + (" (check the key's update policy for this name)" if text == "REFUSED" else ""),
                permanent=rcode in (dns.rcode.REFUSED, dns.rcode.NOTAUTH, dns.rcode.NOTZONE),
            )
