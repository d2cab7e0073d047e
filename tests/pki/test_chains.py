import random

from cryptography.hazmat.primitives import hashes

from inventory.pki.chains import MAX_DEPTH, build_chain, certifi_roots, chain_in_order
from tests.pki.factory import Issued, make_ca, make_key, make_leaf


def sha256s(certs) -> list[str]:
    return [c.fingerprint(hashes.SHA256()).hex() for c in certs]


def test_chain_is_ordered_leaf_to_root_from_shuffled_input(ec_chain):
    candidates = [ec_chain.root.cert, ec_chain.leaf.cert, ec_chain.intermediate.cert]
    random.Random(4).shuffle(candidates)
    result = build_chain(ec_chain.leaf.cert, candidates, roots=[])
    assert sha256s(result.chain) == sha256s(ec_chain.certs)
    assert result.complete is True
    assert result.trusted is False
    assert result.missing_issuer is None
    assert result.problems == []
    assert sha256s(result.intermediates) == [ec_chain.intermediate.sha256]


def test_root_found_only_in_the_trust_store_is_appended_and_trusted(ec_chain):
    result = build_chain(ec_chain.leaf.cert, [ec_chain.intermediate.cert], [ec_chain.root.cert])
    assert sha256s(result.chain) == sha256s(ec_chain.certs)
    assert (result.complete, result.trusted) == (True, True)


def test_missing_intermediate_is_reported_by_name(ec_chain):
    result = build_chain(ec_chain.leaf.cert, [ec_chain.root.cert], [ec_chain.root.cert])
    assert sha256s(result.chain) == [ec_chain.leaf.sha256]
    assert (result.complete, result.trusted) == (False, False)
    assert result.missing_issuer == "CN=Test Intermediate CA"
    assert result.problems == [
        "The issuer of “CN=www.example.test” was not found: CN=Test Intermediate CA."
    ]


def test_missing_root_is_reported_after_the_intermediate(ec_chain):
    result = build_chain(ec_chain.leaf.cert, [ec_chain.intermediate.cert], [])
    assert sha256s(result.chain) == [ec_chain.leaf.sha256, ec_chain.intermediate.sha256]
    assert result.missing_issuer == "CN=Test Root CA"
    assert result.complete is False


def test_impostor_with_the_same_name_but_another_key_is_rejected(ec_chain):
    impostor = make_ca("Test Intermediate CA", issuer=ec_chain.root, key_ids=False)
    result = build_chain(ec_chain.leaf.cert, [impostor.cert, ec_chain.root.cert], [])
    assert sha256s(result.chain) == [ec_chain.leaf.sha256]
    assert result.missing_issuer == "CN=Test Intermediate CA"
    assert "“CN=Test Intermediate CA” has the issuer's name but did not sign" in result.problems[0]


def test_impostor_is_skipped_when_the_real_issuer_is_present(ec_chain):
    impostor = make_ca("Test Intermediate CA", issuer=ec_chain.root, key_ids=False)
    candidates = [impostor.cert, ec_chain.intermediate.cert, ec_chain.root.cert]
    result = build_chain(ec_chain.leaf.cert, candidates, [])
    assert sha256s(result.chain) == sha256s(ec_chain.certs)
    assert result.complete is True


def test_cross_signed_loop_stops_with_a_problem():
    key_a, key_b = make_key(), make_key()
    self_a, self_b = make_ca("CA A", key=key_a), make_ca("CA B", key=key_b)
    a_by_b = make_ca("CA A", key=key_a, issuer=self_b)
    b_by_a = make_ca("CA B", key=key_b, issuer=self_a)
    leaf = make_leaf(self_a)
    result = build_chain(leaf.cert, [a_by_b.cert, b_by_a.cert], [])
    assert sha256s(result.chain) == [leaf.sha256, a_by_b.sha256, b_by_a.sha256]
    assert result.complete is False
    assert result.problems == ["The chain loops back on itself at “CN=CA B”."]


def test_self_issued_key_rollover_link_is_followed_to_the_old_root():
    old_key, new_key = make_key(), make_key()
    old_root = make_ca("Rolling Root", key=old_key)
    new_root = make_ca("Rolling Root", key=new_key)
    link = make_ca("Rolling Root", key=new_key, issuer=Issued(old_root.cert, old_key))
    leaf = make_leaf(new_root)
    result = build_chain(leaf.cert, [link.cert], [old_root.cert])
    assert sha256s(result.chain) == [leaf.sha256, link.sha256, old_root.sha256]
    assert (result.complete, result.trusted) == (True, True)


def test_depth_is_capped():
    cas = [make_ca("CA 0")]
    for number in range(1, MAX_DEPTH + 3):
        cas.append(make_ca(f"CA {number}", issuer=cas[-1]))
    leaf = make_leaf(cas[-1])
    result = build_chain(leaf.cert, [ca.cert for ca in cas], [])
    assert len(result.chain) == MAX_DEPTH
    assert result.complete is False
    assert result.problems == [f"The chain is longer than {MAX_DEPTH} certificates."]


def test_self_signed_leaf_is_its_own_complete_chain():
    leaf = make_leaf(None)
    result = build_chain(leaf.cert, [], [])
    assert sha256s(result.chain) == [leaf.sha256]
    assert (result.complete, result.trusted) == (True, False)
    assert result.intermediates == []


def test_reissued_root_with_the_same_key_counts_as_trusted(ec_chain):
    reissued = make_ca("Test Root CA", key=ec_chain.root.key, days=7300)
    result = build_chain(ec_chain.leaf.cert, ec_chain.certs, [reissued.cert])
    assert result.complete is True
    assert result.trusted is True


def test_certifi_roots_are_loaded_once():
    roots = certifi_roots()
    subjects = {root.subject.rfc4514_string() for root in roots}
    assert len(roots) > 100
    assert "CN=ISRG Root X1,O=Internet Security Research Group,C=US" in subjects
    assert certifi_roots()[0] is roots[0]


def test_chain_in_order(ec_chain):
    leaf, intermediate, root = ec_chain.certs
    assert chain_in_order([leaf, intermediate, root]) is True
    assert chain_in_order([leaf, intermediate]) is True
    assert chain_in_order([leaf]) is True
    assert chain_in_order([leaf, root, intermediate]) is False
    assert chain_in_order([intermediate, leaf]) is False


def test_sha1_signed_links_are_still_verified(rsa_chain):
    from cryptography.hazmat.primitives.hashes import SHA1

    real = make_ca("Legacy CA", issuer=rsa_chain.root, key_kind="rsa-2048", hash_alg=SHA1())
    impostor = make_ca("Legacy CA", key_kind="rsa-2048", key_ids=False)
    leaf = make_leaf(real, hash_alg=SHA1(), key_ids=False)
    result = build_chain(leaf.cert, [impostor.cert, real.cert], [rsa_chain.root.cert])
    assert sha256s(result.chain) == [leaf.sha256, real.sha256, rsa_chain.root.sha256]
    assert (result.complete, result.trusted) == (True, True)
    alone = build_chain(leaf.cert, [impostor.cert], [])
    assert alone.missing_issuer == "CN=Legacy CA"
