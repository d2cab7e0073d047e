"""Single ACME steps on top of the `acme` library: JWS, nonces and badNonce retries are its job.

Nothing here loops for long: the order state machine persists between steps and polls with
its own interval. `poll_until` is for commands and tests.
"""

import base64
import contextlib
import datetime as dt
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import josepy as jose
import requests
from acme import challenges, messages
from acme import client as acme_client
from acme import errors as acme_errors
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .errors import AcmeError, parse_retry_after, problem_text, problem_type, translate

T = TypeVar("T")


@dataclass(frozen=True)
class AcmeConfig:
    """Where the CA is and how to reach it.

    `ca_bundle` trusts a private CA's HTTPS: a file path or the PEM text itself.
    """

    directory_url: str
    ca_bundle: str | None = None
    user_agent: str = "CertConsole"
    timeout: float = 30


@dataclass(frozen=True)
class AccountInfo:
    uri: str
    terms_of_service: str | None


@dataclass(frozen=True)
class ChallengeSnapshot:
    type: str  # "http-01", "dns-01", "tls-alpn-01", ...
    url: str
    token: str
    status: str
    error: str | None = None  # the CA's detail text when the challenge failed
    error_type: str = ""  # e.g. "incorrectResponse", "dns", "connection"


@dataclass(frozen=True)
class AuthzSnapshot:
    url: str
    identifier: str  # without "*." (ACME sends wildcard=True instead)
    wildcard: bool
    status: str
    challenges: list[ChallengeSnapshot]
    expires: dt.datetime | None = None

    def challenge(self, type_: str) -> ChallengeSnapshot | None:
        return next((c for c in self.challenges if c.type == type_), None)

    @property
    def name(self) -> str:
        """The name as ordered ("*.example.com" for a wildcard)."""
        return f"*.{self.identifier}" if self.wildcard else self.identifier

    def failure(self) -> AcmeError | None:
        """A permanent error with the CA's detail if this authorization failed, else None."""
        if self.status not in ("invalid", "deactivated", "expired", "revoked"):
            return None
        failed = next((c for c in self.challenges if c.error), None)
        if failed is None:
            return AcmeError(f"{self.name}: authorization is {self.status}", permanent=True)
        return AcmeError(
            f"{self.name}: {failed.type} validation failed: {failed.error}",
            permanent=True,
            acme_type=failed.error_type,
            detail=failed.error or "",
        )


@dataclass(frozen=True)
class OrderSnapshot:
    url: str
    status: str  # pending, ready, processing, valid, invalid
    expires: dt.datetime | None
    authorizations: list[AuthzSnapshot]
    finalize_url: str
    certificate_url: str | None
    authorization_urls: list[str] = field(default_factory=list)
    identifiers: list[str] = field(default_factory=list)
    error: str | None = None
    error_type: str = ""

    def failure(self) -> AcmeError | None:
        """A permanent error if the CA gave up on this order, else None."""
        if self.status != "invalid":
            return None
        failed = next((a.failure() for a in self.authorizations if a.failure()), None)
        if failed is not None:
            return failed
        return AcmeError(
            f"The CA marked the order invalid: {self.error or 'no reason given'}",
            permanent=True,
            acme_type=self.error_type,
            detail=self.error or "",
        )


@dataclass(frozen=True)
class CertificateDownload:
    fullchain_pem: bytes
    alternates: list[bytes]


@dataclass(frozen=True)
class RenewalWindow:
    start: dt.datetime
    end: dt.datetime
    retry_after: float | None  # seconds until the CA wants to be asked again


# Keys


def generate_account_key() -> bytes:
    """A new ES256 (P-256) account key as unencrypted PKCS#8 PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _jwk(account_key_pem: bytes) -> tuple[jose.JWK, jose.JWASignature]:
    try:
        key = serialization.load_pem_private_key(account_key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise AcmeError(f"The account key cannot be read: {exc}", permanent=True) from exc
    if isinstance(key, ec.EllipticCurvePrivateKey):
        algs = {"secp256r1": jose.ES256, "secp384r1": jose.ES384, "secp521r1": jose.ES512}
        if key.curve.name not in algs:
            raise AcmeError(f"Unsupported account key curve {key.curve.name}", permanent=True)
        return jose.JWKEC(key=key), algs[key.curve.name]
    if isinstance(key, rsa.RSAPrivateKey):
        return jose.JWKRSA(key=key), jose.RS256
    raise AcmeError("The account key must be an EC or RSA key", permanent=True)


# Network


class _Network(acme_client.ClientNetwork):
    """The library's network layer, remembering the last response for Retry-After."""

    last_response: requests.Response | None = None

    def _send_request(self, method: str, url: str, *args: Any, **kwargs: Any):
        self.last_response = None
        response = super()._send_request(method, url, *args, **kwargs)
        self.last_response = response
        return response


def _verify(config: AcmeConfig) -> bool | str:
    bundle = config.ca_bundle
    if not bundle:
        return True
    if "-----BEGIN" not in bundle:
        return bundle
    # requests wants a file: keep one per bundle content, written once.
    folder = Path(tempfile.gettempdir()) / f"certconsole-ca-bundles-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    if folder.is_symlink() or folder.stat().st_uid != os.getuid():
        raise AcmeError(f"{folder} belongs to another user", permanent=True)
    path = folder / f"{hashlib.sha256(bundle.encode()).hexdigest()}.pem"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_text(bundle)
        tmp.replace(path)
    return str(path)


def _network(config: AcmeConfig, key: jose.JWK | None, alg=jose.ES256) -> _Network:
    return _Network(
        key,
        alg=alg,
        verify_ssl=_verify(config),  # type: ignore[arg-type]
        user_agent=config.user_agent,
        timeout=config.timeout,  # type: ignore[arg-type]  # requests takes a float
    )


@contextlib.contextmanager
def _acme_errors(net: _Network | None = None) -> Iterator[None]:
    try:
        yield
    except AcmeError:
        raise
    except Exception as exc:
        response = net.last_response if net is not None else None
        raise translate(exc, response) from exc


def _directory(net: _Network, config: AcmeConfig) -> messages.Directory:
    with _acme_errors(net):
        return acme_client.ClientV2.get_directory(config.directory_url, net)


def directory_meta(config: AcmeConfig) -> dict[str, Any]:
    """What the UI shows before registering: terms, EAB requirement, website, features."""
    directory = _directory(_network(config, None), config)
    meta = directory.meta
    return {
        "terms_of_service": meta.terms_of_service,
        "external_account_required": bool(meta.external_account_required),
        "website": meta.website,
        "caa_identities": list(meta.caa_identities or ()),
        "profiles": dict(meta.profiles or {}),
        "renewal_info": _has(directory, "renewalInfo"),
    }


def _has(directory: messages.Directory, name: str) -> bool:
    try:
        directory[name]
    except KeyError:
        return False
    return True


def register_account(
    config: AcmeConfig,
    account_key_pem: bytes,
    *,
    email: str | None,
    agree_tos: bool,
    eab_kid: str | None = None,
    eab_hmac_key: str | None = None,
) -> AccountInfo:
    """Create (or find, for a known key) the account of `account_key_pem` at the CA."""
    if not agree_tos:
        raise AcmeError("You must agree to the terms of service", permanent=True)
    key, alg = _jwk(account_key_pem)
    net = _network(config, key, alg)
    directory = _directory(net, config)
    terms = directory.meta.terms_of_service
    binding = None
    if eab_kid or eab_hmac_key:
        if not (eab_kid and eab_hmac_key):
            raise AcmeError(
                "External account binding needs both the key ID and the HMAC key",
                permanent=True,
            )
        try:
            binding = messages.ExternalAccountBinding.from_data(
                account_public_key=key.public_key(),
                kid=eab_kid,
                hmac_key=eab_hmac_key,
                directory=directory,
            )
        except (ValueError, TypeError, jose.DeserializationError) as exc:
            raise AcmeError(
                f"The EAB HMAC key is not valid base64url: {exc}", permanent=True
            ) from exc
    elif directory.meta.external_account_required:
        raise AcmeError(
            "This CA requires external account binding: give the EAB key ID and HMAC key "
            "from your CA account",
            permanent=True,
            acme_type="externalAccountRequired",
        )
    registration = messages.NewRegistration.from_data(
        email=email or None,
        terms_of_service_agreed=True,
        external_account_binding=binding,
    )
    acme = acme_client.ClientV2(directory, net=net)
    with _acme_errors(net):
        try:
            account = acme.new_account(registration)
        except acme_errors.ConflictError as existing:  # this key has an account already
            return AccountInfo(uri=existing.location, terms_of_service=terms)
    return AccountInfo(uri=account.uri, terms_of_service=account.terms_of_service or terms)


# Snapshots of the library's resources


def _error_text(error: messages.Error | None) -> tuple[str | None, str]:
    if error is None:
        return None, ""
    return problem_text(error), problem_type(error)


def _challenge(body: messages.ChallengeBody) -> ChallengeSnapshot:
    data = body.to_partial_json()
    error, error_type = _error_text(body.error)
    return ChallengeSnapshot(
        type=data.get("type", ""),
        url=body.uri,
        token=data.get("token", ""),
        status=body.status.name if body.status else "pending",
        error=error,
        error_type=error_type,
    )


def _authz(url: str, body: messages.Authorization) -> AuthzSnapshot:
    return AuthzSnapshot(
        url=url,
        identifier=body.identifier.value,
        wildcard=bool(body.wildcard),
        status=body.status.name if body.status else "pending",
        challenges=[_challenge(c) for c in body.challenges or ()],
        expires=body.expires,
    )


def _order(url: str, body: messages.Order, authzs: list[AuthzSnapshot]) -> OrderSnapshot:
    error, error_type = _error_text(body.error)
    return OrderSnapshot(
        url=url,
        status=body.status.name if body.status else "pending",
        expires=body.expires,
        authorizations=authzs,
        finalize_url=body.finalize,
        certificate_url=body.certificate,
        authorization_urls=list(body.authorizations or ()),
        identifiers=[i.value for i in body.identifiers or ()],
        error=error,
        error_type=error_type,
    )


def _load(loader: Callable[[bytes], T], pem: bytes, what: str) -> T:
    try:
        return loader(pem)
    except ValueError as exc:
        raise AcmeError(f"The {what} cannot be read: {exc}", permanent=True) from exc


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def ari_certificate_id(cert: x509.Certificate) -> str:
    """RFC 9773 CertID: base64url(AKI keyIdentifier) "." base64url(serial as DER INTEGER)."""
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    if aki.key_identifier is None:
        raise AcmeError("The certificate has no authority key identifier", permanent=True)
    serial = cert.serial_number
    serial_der = serial.to_bytes((serial.bit_length() + 8) // 8, "big", signed=True)
    return f"{_b64url(aki.key_identifier)}.{_b64url(serial_der)}"


class AcmeClient:
    """An existing ACME account at one CA; each method is one short exchange."""

    def __init__(self, config: AcmeConfig, account_key_pem: bytes, account_uri: str):
        self.config = config
        self.account_uri = account_uri
        self._key, alg = _jwk(account_key_pem)
        self._net = _network(config, self._key, alg)
        self._net.account = messages.RegistrationResource(
            body=messages.Registration(), uri=account_uri
        )
        self._client: acme_client.ClientV2 | None = None

    @property
    def _acme(self) -> acme_client.ClientV2:
        if self._client is None:  # the directory is fetched on first use only
            self._client = acme_client.ClientV2(_directory(self._net, self.config), self._net)
        return self._client

    def _errors(self):
        return _acme_errors(self._net)

    def _get(self, url: str) -> requests.Response:
        with self._errors():
            return self._acme._post_as_get(url)

    # Orders and authorizations

    def new_order(self, csr_pem: bytes, *, profile: str | None = None) -> OrderSnapshot:
        _load(x509.load_pem_x509_csr, csr_pem, "CSR")
        with self._errors():
            order = self._acme.new_order(csr_pem, profile=profile)
        authzs = [_authz(a.uri, a.body) for a in order.authorizations]
        return _order(order.uri, order.body, authzs)

    def fetch_authorization(self, url: str) -> AuthzSnapshot:
        response = self._get(url)
        with self._errors():
            return _authz(url, messages.Authorization.from_json(response.json()))

    def fetch_order(self, url: str, *, with_authorizations: bool = True) -> OrderSnapshot:
        response = self._get(url)
        with self._errors():
            body = messages.Order.from_json(response.json())
        authzs = []
        if with_authorizations:
            authzs = [self.fetch_authorization(a) for a in body.authorizations or ()]
        return _order(url, body, authzs)

    # Challenges

    def key_authorization(self, token: str) -> str:
        """The body to serve at /.well-known/acme-challenge/<token> for HTTP-01."""
        return challenges.HTTP01(token=jose.b64decode(token)).validation(self._key)

    def dns01_txt_value(self, token: str) -> str:
        """The TXT value to publish at _acme-challenge.<domain> for DNS-01."""
        return challenges.DNS01(token=jose.b64decode(token)).validation(self._key)

    def answer_challenge(self, challenge: str | ChallengeSnapshot) -> None:
        """Tell the CA the challenge is ready to be validated (the caller skips valid authzs)."""
        if isinstance(challenge, str):
            response = self._get(challenge)
            with self._errors():
                body = messages.ChallengeBody.from_json(response.json())
        else:
            body = messages.ChallengeBody.from_json(
                {
                    "type": challenge.type,
                    "url": challenge.url,
                    "token": challenge.token,
                    "status": challenge.status,
                }
            )
        if not isinstance(body.chall, challenges.KeyAuthorizationChallenge):
            raise AcmeError(f"Unsupported challenge type {body.chall.typ}", permanent=True)
        status = body.status.name if body.status else "pending"
        if status != "pending":
            raise AcmeError(
                f"The challenge is {status}, not pending: it cannot be answered",
                permanent=True,
                acme_type="malformed",
            )
        with self._errors():
            self._acme.answer_challenge(body, body.chall.response(self._key))

    # Certificates

    def finalize(self, order_url: str, csr_pem: bytes) -> OrderSnapshot:
        """Send the CSR if the order is ready; otherwise return it as it stands (idempotent)."""
        current = self.fetch_order(order_url, with_authorizations=False)
        if current.status != "ready":
            if current.status == "invalid":
                raise current.failure()  # type: ignore[misc]
            if current.status == "pending":
                raise AcmeError(
                    "The order is not ready: some authorizations are not valid yet",
                    acme_type="orderNotReady",
                )
            return current  # processing or valid: finalized already
        order = messages.OrderResource(
            body=messages.Order(finalize=current.finalize_url), uri=order_url, csr_pem=csr_pem
        )
        with self._errors():
            order = self._acme.begin_finalization(order)
        return _order(order_url, order.body, [])

    def download_certificate(self, order: OrderSnapshot | str) -> CertificateDownload:
        """The issued full chain, plus any alternate chains the CA links to."""
        url = order if isinstance(order, str) else order.certificate_url
        if not url:
            raise AcmeError("The order has no certificate yet", permanent=False)
        response = self._get(url)
        with self._errors():
            links = self._acme._get_links(response, "alternate")
        alternates = [self._get(link).content for link in links]
        return CertificateDownload(fullchain_pem=response.content, alternates=alternates)

    def revoke(self, cert_pem: bytes, reason_code: int = 0) -> None:
        cert = _load(x509.load_pem_x509_certificate, cert_pem, "certificate")
        with self._errors():
            self._acme.revoke(cert, reason_code)

    def renewal_info(self, cert_pem: bytes) -> RenewalWindow | None:
        """The CA's suggested renewal window (RFC 9773), or None if it offers no ARI."""
        try:
            base = self._acme.directory["renewalInfo"]
        except KeyError:
            return None
        cert = _load(x509.load_pem_x509_certificate, cert_pem, "certificate")
        url = f"{base.rstrip('/')}/{ari_certificate_id(cert)}"
        with self._errors():
            response = self._net.get(url, content_type="application/json")
            info = messages.RenewalInfo.from_json(response.json())
        window = info.suggested_window
        return RenewalWindow(
            start=window.start,
            end=window.end,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )


def poll_until(
    fetch: Callable[[], T],
    done: Callable[[T], bool],
    *,
    interval: float,
    timeout: float,
    backoff: float = 1.5,
    max_interval: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `fetch` until `done(result)`; wait longer each round, and as the CA asks.

    Transient `AcmeError`s are retried (after their Retry-After if given); permanent ones
    and the timeout raise.
    """
    deadline = time.monotonic() + timeout
    wait = interval
    while True:
        pause = wait
        try:
            result = fetch()
        except AcmeError as exc:
            if exc.permanent:
                raise
            if exc.retry_after is not None:
                pause = exc.retry_after
            if time.monotonic() + pause > deadline:
                raise
        else:
            if done(result):
                return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AcmeError(f"Gave up waiting after {timeout:g} s", permanent=False)
        sleep(min(pause, remaining))
        wait = min(wait * backoff, max_interval)
