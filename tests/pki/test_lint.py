from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes

from inventory.pki.chains import build_chain
from inventory.pki.lint import Finding, lint, validity_limit_days
from tests.pki.factory import Chain, make_ca, make_leaf

NOW = datetime.now(UTC)


def run_lint(leaf, cas, *, now=NOW, file_order=None) -> list[Finding]:
    chain = build_chain(leaf.cert, [ca.cert for ca in cas], [])
    return lint(leaf.cert, chain, now=now, file_order=file_order)


def codes(findings: list[Finding]) -> list[str]:
    return [finding.code for finding in findings]


def test_a_healthy_chain_has_no_findings(ec_chain: Chain):
    findings = run_lint(ec_chain.leaf, [ec_chain.intermediate, ec_chain.root])
    assert findings == []


@pytest.mark.parametrize(
    ("kind", "fires"),
    [("rsa-1024", True), ("ec-p224", True), ("rsa-2048", False), ("ec-p256", False)],
)
def test_weak_key(ec_chain, kind, fires):
    leaf = make_leaf(ec_chain.intermediate, key_kind=kind)
    findings = run_lint(leaf, [ec_chain.intermediate, ec_chain.root])
    assert codes(findings) == (["weak_key"] if fires else [])
    if fires:
        assert findings[0].severity == "error"
        assert findings[0].message.startswith("The certificate has a weak ")


def test_sha1_signed_leaf(rsa_chain):
    leaf = make_leaf(rsa_chain.intermediate, hash_alg=hashes.SHA1())
    findings = run_lint(leaf, [rsa_chain.intermediate, rsa_chain.root])
    assert findings == [
        Finding(
            "sha1_signature",
            "error",
            "The certificate is signed with SHA-1, which browsers and TLS clients reject.",
        )
    ]


def test_sha1_signed_intermediate_is_named(rsa_chain):
    intermediate = make_ca("Old Intermediate", issuer=rsa_chain.root, hash_alg=hashes.SHA1())
    leaf = make_leaf(intermediate)
    findings = run_lint(leaf, [intermediate, rsa_chain.root])
    assert codes(findings) == ["sha1_signature"]
    assert findings[0].message.startswith("The intermediate “Old Intermediate” is signed with")


def test_sha1_self_signature_of_the_root_is_not_flagged():
    root = make_ca("SHA-1 Root", key_kind="rsa-2048", hash_alg=hashes.SHA1())
    intermediate = make_ca("Int", issuer=root)
    leaf = make_leaf(intermediate)
    assert run_lint(leaf, [intermediate, root]) == []


@pytest.mark.parametrize(
    ("issued", "length", "fires"),
    [
        (datetime(2025, 6, 1, tzinfo=UTC), timedelta(days=398), False),
        (datetime(2025, 6, 1, tzinfo=UTC), timedelta(days=398, seconds=1), True),
        (datetime(2026, 3, 14, 23, 59, 59, tzinfo=UTC), timedelta(days=398), False),
        (datetime(2026, 3, 15, tzinfo=UTC), timedelta(days=200), False),
        (datetime(2026, 3, 15, tzinfo=UTC), timedelta(days=200, seconds=1), True),
        (datetime(2027, 3, 15, tzinfo=UTC), timedelta(days=100), False),
        (datetime(2027, 3, 15, tzinfo=UTC), timedelta(days=101), True),
        (datetime(2029, 3, 15, tzinfo=UTC), timedelta(days=47), False),
        (datetime(2029, 3, 15, tzinfo=UTC), timedelta(days=48), True),
    ],
)
def test_validity_too_long_follows_sc081(issued, length, fires):
    root = make_ca(not_before=issued - timedelta(days=1))
    leaf = make_leaf(root, not_before=issued, not_after=issued + length)
    findings = run_lint(leaf, [root], now=issued + timedelta(days=1))
    assert codes(findings) == (["validity_too_long"] if fires else [])
    if fires:
        assert findings[0].severity == "warning"
        limit = validity_limit_days(issued)
        assert f"may be valid for at most {limit} days" in findings[0].message


def test_validity_too_long_ignores_ca_and_self_signed_leaves():
    issued = datetime(2026, 6, 1, tzinfo=UTC)
    root = make_ca(not_before=issued)
    self_signed = make_leaf(None, not_before=issued, days=3650)
    assert codes(run_lint(root, [], now=issued + timedelta(days=1))) == []
    assert codes(run_lint(self_signed, [], now=issued + timedelta(days=1))) == []


@pytest.mark.parametrize(
    ("sans", "fires"),
    [([], True), (["ops@example.test"], True), (["203.0.113.7"], False), (["a.test"], False)],
)
def test_no_san(ec_chain, sans, fires):
    leaf = make_leaf(ec_chain.intermediate, sans=sans)
    findings = run_lint(leaf, [ec_chain.intermediate, ec_chain.root])
    assert codes(findings) == (["no_san"] if fires else [])


def test_expired_leaf_and_expired_intermediate_are_named(ec_chain):
    now = NOW + timedelta(days=2000)
    findings = run_lint(ec_chain.leaf, [ec_chain.intermediate, ec_chain.root], now=now)
    assert codes(findings) == ["expired", "expired"]
    assert findings[0].message.startswith("The certificate expired on ")
    assert findings[1].message.startswith("The intermediate “Test Intermediate CA” expired on ")
    assert findings[0].message.endswith(" ago).")


def test_not_yet_valid(ec_chain):
    findings = run_lint(
        ec_chain.leaf, [ec_chain.intermediate, ec_chain.root], now=NOW - timedelta(days=1)
    )
    assert codes(findings) == ["not_yet_valid", "not_yet_valid", "not_yet_valid"]
    assert findings[2].message.startswith("The root “Test Root CA” is not valid before ")


def test_missing_intermediate_is_an_error_naming_it(ec_chain):
    findings = run_lint(ec_chain.leaf, [ec_chain.root])
    assert codes(findings) == ["chain_incomplete"]
    assert findings[0].severity == "error"
    assert "CN=Test Intermediate CA" in findings[0].message


def test_unknown_root_is_a_warning(ec_chain):
    findings = run_lint(ec_chain.leaf, [ec_chain.intermediate])
    assert [(f.code, f.severity) for f in findings] == [("chain_incomplete", "warning")]
    assert "CN=Test Root CA" in findings[0].message


def test_chain_out_of_order(ec_chain):
    cas = [ec_chain.intermediate, ec_chain.root]
    leaf, intermediate, root = ec_chain.certs
    shuffled = run_lint(ec_chain.leaf, cas, file_order=[root, leaf, intermediate])
    ordered = run_lint(ec_chain.leaf, cas, file_order=[leaf, intermediate, root])
    assert [(f.code, f.severity) for f in shuffled] == [("chain_out_of_order", "warning")]
    assert ordered == []
