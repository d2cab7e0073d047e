"""Private CA: certificates issued per second through `orders.ca.issue`, next to raw signing.

One EC P-256 root → EC P-256 intermediate with name constraints (internal.example), a server
profile allowing *.internal.example; one shared EC P-256 leaf key, a distinct name per
certificate. Baseline: `cryptography`'s CertificateBuilder().sign() with the same extensions,
in the same run. The console path adds the profile check, name normalisation, the name
constraint walk up the chain and the CA checks. No database is touched.
"""

import time
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from inventory.pki.keys import generate_private_key
from orders.ca import CaSpec, IssueRequest, Profile, check, create_intermediate, create_root, issue

DEFAULT_N = 2000
ROUND = 100
CRL_URL = "http://127.0.0.1:8000/ca/bench/crl"


def run(n: int) -> dict:
    root = create_root(CaSpec("CN=Bench Root,O=CertConsole"))
    ca = create_intermediate(
        CaSpec("CN=Bench Issuing CA,O=CertConsole", permitted_dns=["internal.example"]), root
    )
    profile = Profile("bench", allowed_domains=["*.internal.example"], max_days=90)
    public_key = generate_private_key("ec-p256").public_key()
    names = [f"svc-{i}.internal.example" for i in range(n)]
    requests = [IssueRequest(public_key, dns=[name], days=30) for name in names]

    # Alternate the two in rounds, so a noisy neighbour slows both alike.
    raw_seconds = console_seconds = 0.0
    for round_start in range(0, n, ROUND):
        start = time.perf_counter()
        for name in names[round_start : round_start + ROUND]:
            _raw(ca.cert, ca.key, public_key, name)
        raw_seconds += time.perf_counter() - start
        start = time.perf_counter()
        for request in requests[round_start : round_start + ROUND]:
            issue(ca, request, profile, crl_url=CRL_URL)
        console_seconds += time.perf_counter() - start

    start = time.perf_counter()
    for request in requests:
        check(profile, request)
    check_seconds = time.perf_counter() - start
    return {
        "n": n,
        "key": "EC-P256",
        "raw_sign_per_s": round(n / raw_seconds, 1),
        "console_issue_per_s": round(n / console_seconds, 1),
        "ratio_to_raw": round(raw_seconds / console_seconds, 3),
        "profile_check_per_s": round(n / check_seconds, 1),
    }


def _raw(ca_cert, ca_key, public_key, name: str) -> x509.Certificate:
    """The same certificate `issue` makes, built and signed directly."""
    now = datetime.now(UTC)
    ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    usage = x509.KeyUsage(True, False, False, False, False, False, False, False, False)
    point = x509.DistributionPoint([x509.UniformResourceIdentifier(CRL_URL)], None, None, None)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.CRLDistributionPoints([point]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
