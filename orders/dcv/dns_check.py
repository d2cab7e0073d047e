"""Ask a name's authoritative servers directly whether a DNS-01 TXT value is published.

Recursive resolvers cache negative answers for minutes; the CA asks the authoritative
servers, so we do too.
"""

from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver

Nameserver = tuple[str, int]
MAX_CNAME_HOPS = 8


@dataclass(frozen=True)
class DnsCheck:
    ok: bool
    found: list[str]  # every TXT value seen, in order, once each
    queried: list[str]  # the servers asked ("192.0.2.1" or "127.0.0.1:5353")
    error: str | None = None


def absolute(name: str | dns.name.Name) -> dns.name.Name:
    if isinstance(name, dns.name.Name):
        return name
    return dns.name.from_text(name.strip(), origin=dns.name.root)


def server_label(server: Nameserver) -> str:
    host, port = server
    return host if port == 53 else f"{host}:{port}"


def authoritative_nameservers(
    name: str | dns.name.Name,
    *,
    timeout: float = 5,
    resolver: dns.resolver.Resolver | None = None,
) -> list[Nameserver]:
    """The addresses of the servers authoritative for `name`'s zone (zone cut found via SOA).

    Only finding the servers goes through the (recursive) `resolver`, the system's by default.
    """
    resolver = resolver or dns.resolver.get_default_resolver()
    zone = dns.resolver.zone_for_name(absolute(name), resolver=resolver, lifetime=timeout)
    servers: list[Nameserver] = []
    for ns in resolver.resolve(zone, dns.rdatatype.NS, lifetime=timeout):
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            try:
                answer = resolver.resolve(ns.target, rdtype, lifetime=timeout)
            except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
                continue
            servers += [(rr.address, 53) for rr in answer if (rr.address, 53) not in servers]
    if not servers:
        raise dns.resolver.NoNameservers(request=None, errors=[])
    return servers


def query(
    name: str | dns.name.Name, rdtype: dns.rdatatype.RdataType, server: Nameserver, timeout: float
) -> dns.message.Message:
    """One non-recursive query to one server (UDP, TCP if truncated)."""
    message = dns.message.make_query(absolute(name), rdtype)
    message.flags &= ~dns.flags.RD
    response, _ = dns.query.udp_with_fallback(message, server[0], port=server[1], timeout=timeout)
    return response


def check_txt(
    fqdn: str,
    expected: str,
    *,
    nameservers: list[Nameserver] | None = None,
    timeout: float = 5,
) -> DnsCheck:
    """Whether every authoritative server of `fqdn` serves the TXT value `expected`.

    CNAMEs are followed (delegated `_acme-challenge` names); with `nameservers` None the
    zone's servers are found with dnspython, otherwise the given ones are asked.
    """
    name = absolute(fqdn)
    found: list[str] = []
    queried: list[str] = []
    for _hop in range(MAX_CNAME_HOPS):
        try:
            servers = nameservers or authoritative_nameservers(name, timeout=timeout)
        except dns.exception.DNSException as exc:
            error = f"cannot find the authoritative name servers of {name}: {exc}"
            return DnsCheck(False, found, queried, error)
        answers: dict[str, list[str]] = {}
        errors: list[str] = []
        target = None
        for server in servers:
            label = server_label(server)
            queried.append(label)
            try:
                response = query(name, dns.rdatatype.TXT, server, timeout)
            except (dns.exception.DNSException, OSError) as exc:
                errors.append(f"{label}: {exc or type(exc).__name__}")
                continue
            rcode = response.rcode()
            if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
                errors.append(f"{label}: {dns.rcode.to_text(rcode)}")
                continue
            chain = response.resolve_chaining()
            if chain.answer is None and chain.canonical_name != name:
                target = chain.canonical_name
            values = [b"".join(rr.strings).decode() for rr in chain.answer or ()]
            answers[label] = values
            found += [v for v in values if v not in found]
        if target is not None and not found:
            name = target  # the CNAME leaves this zone: ask the target's own servers
            continue
        ok = bool(answers) and not errors and all(expected in v for v in answers.values())
        return DnsCheck(ok, found, queried, "; ".join(errors) or None)
    return DnsCheck(False, found, queried, f"more than {MAX_CNAME_HOPS} CNAMEs from {fqdn}")
