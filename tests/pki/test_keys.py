import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import dsa

from inventory.pki import keys
from inventory.pki.errors import PkiError
from tests.pki.factory import make_key, openssl


@pytest.fixture(scope="module")
def generated() -> dict:
    """One key of every kind, generated once (RSA-4096 is slow)."""
    return {kind: keys.generate_private_key(kind) for kind in keys.KEY_KINDS}


@pytest.mark.parametrize(
    ("kind", "name", "size"),
    [
        ("ec-p256", "EC-P256", 256),
        ("ec-p384", "EC-P384", 384),
        ("ec-p521", "EC-P521", 521),
        ("rsa-2048", "RSA-2048", 2048),
        ("rsa-3072", "RSA-3072", 3072),
        ("rsa-4096", "RSA-4096", 4096),
        ("ed25519", "Ed25519", 256),
    ],
)
def test_generated_keys_are_named_like_people_say_them(generated, kind, name, size):
    key = generated[kind]
    assert keys.key_type(key) == name
    assert keys.key_type(key.public_key()) == name
    assert keys.key_size(key) == size


def test_ed448_and_dsa_keys_are_named():
    assert keys.key_type(make_key("ed448")) == "Ed448"
    assert keys.key_type(dsa.generate_private_key(1024)) == "DSA-1024"


def test_unknown_key_kind_is_refused_with_the_choices():
    with pytest.raises(PkiError, match="Unknown key type 'rsa-512'; choose one of ec-p256"):
        keys.generate_private_key("rsa-512")


@pytest.mark.parametrize("kind", ["ec-p256", "rsa-2048", "ed25519"])
def test_spki_sha256_matches_openssl(tmp_path, generated, kind):
    key = generated[kind]
    (tmp_path / "key.pem").write_bytes(keys.private_key_pem(key))
    openssl("pkey", "-in", "key.pem", "-pubout", "-outform", "DER", "-out", "pub.der", cwd=tmp_path)
    expected = hashlib.sha256((tmp_path / "pub.der").read_bytes()).hexdigest()
    assert keys.spki_sha256(key) == expected
    assert keys.spki_sha256(key.public_key()) == expected


def test_pkcs8_der_loads_back_to_the_same_key(generated):
    key = generated["ec-p384"]
    loaded = keys.load_private_key(keys.private_key_pkcs8_der(key))
    assert keys.spki_sha256(loaded) == keys.spki_sha256(key)


def test_encrypted_pem_needs_the_right_password(tmp_path, generated):
    key = generated["ec-p256"]
    data = keys.private_key_pem(key, b"s3cret")
    assert b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data
    assert keys.spki_sha256(keys.load_private_key(data, b"s3cret")) == keys.spki_sha256(key)
    with pytest.raises(PkiError, match=r"^The private key is encrypted; enter its password\.$"):
        keys.load_private_key(data)
    with pytest.raises(PkiError, match=r"^Wrong password for the encrypted private key\.$"):
        keys.load_private_key(data, b"nope")
    (tmp_path / "key.pem").write_bytes(data)
    out = openssl(
        "pkey", "-in", "key.pem", "-passin", "pass:s3cret", "-noout", "-text", cwd=tmp_path
    )
    assert "ASN1 OID: prime256v1" in out


def test_password_given_for_an_unencrypted_key_is_ignored(generated):
    key = generated["ed25519"]
    loaded = keys.load_private_key(keys.private_key_pem(key), b"unneeded")
    assert keys.spki_sha256(loaded) == keys.spki_sha256(key)


def test_garbage_key_is_reported_as_corrupted():
    with pytest.raises(PkiError, match=r"^The data is truncated or corrupted: the private key"):
        keys.load_private_key(b"\x30\x03\x02\x01\x00")
