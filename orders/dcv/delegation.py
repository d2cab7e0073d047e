"""DNS-01 record names, and CNAME delegation of `_acme-challenge` to a validation zone."""

import dns.exception
import dns.rdatatype

from . import DcvError
from .dns_check import (
    MAX_CNAME_HOPS,
    Nameserver,
    absolute,
    authoritative_nameservers,
    query,
    server_label,
)


def challenge_name(domain: str) -> str:
    """The TXT name DNS-01 checks: `_acme-challenge.<domain>` (a wildcard shares its base's)."""
    return "_acme-challenge." + domain.strip().rstrip(".").removeprefix("*.")


def follow_cname(
    fqdn: str, *, nameservers: list[Nameserver] | None = None, timeout: float = 5
) -> str:
    """Where the TXT record for `fqdn` must really be written (the end of its CNAME chain).

    Asks the authoritative servers (or `nameservers`) at each hop; returns `fqdn` itself
    when it is no alias. The result has no trailing dot.
    """
    name = absolute(fqdn)
    seen = {name}
    for _hop in range(MAX_CNAME_HOPS):
        try:
            servers = nameservers or authoritative_nameservers(name, timeout=timeout)
        except dns.exception.DNSException as exc:
            raise DcvError(f"Cannot find the name servers of {name}: {exc}") from exc
        target = _cname_target(name, servers, timeout)
        if target is None:
            return name.to_text(omit_final_dot=True)
        if target in seen:
            raise DcvError(f"CNAME loop at {target}", permanent=True)
        seen.add(target)
        name = target
    raise DcvError(f"More than {MAX_CNAME_HOPS} CNAMEs from {fqdn}", permanent=True)


def _cname_target(name, servers: list[Nameserver], timeout: float):
    errors = []
    for server in servers:
        try:
            response = query(name, dns.rdatatype.CNAME, server, timeout)
        except (dns.exception.DNSException, OSError) as exc:
            errors.append(f"{server_label(server)}: {exc or type(exc).__name__}")
            continue
        for rrset in response.answer:
            if rrset.name == name and rrset.rdtype == dns.rdatatype.CNAME:
                return rrset[0].target
        return None
    raise DcvError(f"No name server answered for {name}: {'; '.join(errors)}")
