"""Keys: generation, naming, fingerprints, loading, and checking who signed a certificate."""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import (
    dsa,
    ec,
    ed448,
    ed25519,
    padding,
    rsa,
    x448,
    x25519,
)
from cryptography.hazmat.primitives.asymmetric.types import (
    PrivateKeyTypes,
    PublicKeyTypes,
)

from .errors import PkiError

KEY_KINDS = ("ec-p256", "ec-p384", "ec-p521", "rsa-2048", "rsa-3072", "rsa-4096", "ed25519")

_CURVE_NAMES = {"secp256r1": "P256", "secp384r1": "P384", "secp521r1": "P521"}
_CURVES = {"ec-p256": ec.SECP256R1, "ec-p384": ec.SECP384R1, "ec-p521": ec.SECP521R1}
_RSA_SIZES = {"rsa-2048": 2048, "rsa-3072": 3072, "rsa-4096": 4096}


def public_key_of(key: PublicKeyTypes | PrivateKeyTypes) -> PublicKeyTypes:
    """Return the public half of a private key, or the public key itself."""
    if isinstance(key, PublicKeyTypes):
        return key
    return key.public_key()


def key_type(key: PublicKeyTypes | PrivateKeyTypes) -> str:
    """Name a key the way people say it: "RSA-2048", "EC-P256", "Ed25519"."""
    key = public_key_of(key)
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA-{key.key_size}"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC-" + _CURVE_NAMES.get(key.curve.name, key.curve.name)
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA-{key.key_size}"
    names = {
        ed25519.Ed25519PublicKey: "Ed25519",
        ed448.Ed448PublicKey: "Ed448",
        x25519.X25519PublicKey: "X25519",
        x448.X448PublicKey: "X448",
    }
    for cls, name in names.items():
        if isinstance(key, cls):
            return name
    return type(key).__name__


def key_size(key: PublicKeyTypes | PrivateKeyTypes) -> int:
    """Return the key size in bits (RSA/DSA modulus, curve size for EC and EdDSA)."""
    key = public_key_of(key)
    if isinstance(key, rsa.RSAPublicKey | dsa.DSAPublicKey):
        return key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.curve.key_size
    if isinstance(key, ed25519.Ed25519PublicKey | x25519.X25519PublicKey):
        return 256
    if isinstance(key, ed448.Ed448PublicKey | x448.X448PublicKey):
        return 448
    return 0


def spki_der(key: PublicKeyTypes | PrivateKeyTypes) -> bytes:
    """Return the DER SubjectPublicKeyInfo of a key."""
    return public_key_of(key).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def spki_sha256(key: PublicKeyTypes | PrivateKeyTypes) -> str:
    """Return the lowercase hex SHA-256 of the key's DER SubjectPublicKeyInfo."""
    return hashlib.sha256(spki_der(key)).hexdigest()


def generate_private_key(kind: str) -> PrivateKeyTypes:
    """Generate a new private key of one of KEY_KINDS."""
    if kind in _CURVES:
        return ec.generate_private_key(_CURVES[kind]())
    if kind in _RSA_SIZES:
        return rsa.generate_private_key(public_exponent=65537, key_size=_RSA_SIZES[kind])
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise PkiError(f"Unknown key type {kind!r}; choose one of {', '.join(KEY_KINDS)}.")


def private_key_pkcs8_der(key: PrivateKeyTypes) -> bytes:
    """Serialise a private key as unencrypted PKCS#8 DER."""
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def private_key_pem(key: PrivateKeyTypes, passphrase: bytes | None = None) -> bytes:
    """Serialise a private key as PKCS#8 PEM, encrypted when a passphrase is given."""
    encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
    if passphrase:
        encryption = serialization.BestAvailableEncryption(passphrase)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def load_private_key(data: bytes, password: bytes | None = None) -> PrivateKeyTypes:
    """Load a PEM or DER private key (PKCS#1, PKCS#8, SEC1, encrypted PKCS#8)."""
    is_pem = b"-----BEGIN" in data
    loader = serialization.load_pem_private_key if is_pem else serialization.load_der_private_key
    encrypted = _looks_encrypted(data) if is_pem else _der_looks_encrypted(data)
    if encrypted and not password:
        raise PkiError("The private key is encrypted; enter its password.")
    try:
        return loader(data, password if encrypted else None)
    except UnsupportedAlgorithm:
        raise PkiError("The private key uses an algorithm that is not supported.") from None
    except (ValueError, TypeError):
        if encrypted:
            raise PkiError("Wrong password for the encrypted private key.") from None
        raise PkiError(
            "The data is truncated or corrupted: the private key could not be read."
        ) from None


def _looks_encrypted(pem: bytes) -> bool:
    """Tell whether a PEM private key is encrypted (PKCS#8 or OpenSSL Proc-Type)."""
    return b"ENCRYPTED PRIVATE KEY" in pem or b"Proc-Type: 4,ENCRYPTED" in pem


def _der_looks_encrypted(der: bytes) -> bool:
    """Tell whether DER is an EncryptedPrivateKeyInfo (a SEQUENCE that opens with a SEQUENCE)."""
    if len(der) < 4 or der[0] != 0x30:
        return False
    header = 2 + (der[1] & 0x7F if der[1] & 0x80 else 0)
    return len(der) > header and der[header] == 0x30


def signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Tell whether issuer's name matches cert's issuer and issuer's key signed cert."""
    try:
        cert.verify_directly_issued_by(issuer)
    except ValueError:
        return _signed_with_legacy_hash(cert, issuer)
    except (TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _signed_with_legacy_hash(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Verify SHA-1 signatures by hand: cryptography refuses them, but old chains use them."""
    try:
        algorithm = cert.signature_hash_algorithm
        key = issuer.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return False
    if cert.issuer != issuer.subject or not isinstance(algorithm, hashes.SHA1):
        return False
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(algorithm))
        else:
            return False
    except (InvalidSignature, ValueError, UnsupportedAlgorithm):
        return False
    return True


def is_self_signed(cert: x509.Certificate) -> bool:
    """Tell whether the certificate names itself as issuer and its own key signed it."""
    return cert.issuer == cert.subject and signed_by(cert, cert)
