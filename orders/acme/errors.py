"""One exception for everything that goes wrong talking to a CA, sorted into retry or give up."""

import datetime as dt
from email.utils import parsedate_to_datetime

import josepy as jose
import requests
from acme import errors as acme_errors
from acme import messages

# Problem types worth another try later; every other CA problem needs a person to act.
TRANSIENT_TYPES = frozenset({"badNonce", "serverInternal", "rateLimited", "orderNotReady"})


class AcmeError(Exception):
    """A CA request failed; `permanent` says whether trying again can help."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
        acme_type: str = "",
        detail: str = "",
    ):
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.retry_after = retry_after
        self.acme_type = acme_type
        self.detail = detail

    @property
    def transient(self) -> bool:
        return not self.permanent

    def __repr__(self) -> str:
        kind = "permanent" if self.permanent else "transient"
        return f"AcmeError({self.message!r}, {kind}, type={self.acme_type!r})"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


def problem_type(error: messages.Error) -> str:
    """The short problem type ("rateLimited"), or the full URN for non-ACME types."""
    return error.code or str(error.typ or "")


def problem_text(error: messages.Error) -> str:
    """The CA's own words for a problem, subproblems included."""
    text = error.detail or error.title or error.description or problem_type(error)
    for sub in error.subproblems or ():
        name = sub.identifier.value if sub.identifier else ""
        sub_text = sub.detail or sub.description or problem_type(sub)
        text += f"; {name}: {sub_text}" if name else f"; {sub_text}"
    return text


def from_problem(
    error: messages.Error, response: requests.Response | None = None, *, permanent=None
) -> AcmeError:
    """An `AcmeError` for an RFC 7807 problem document sent by the CA."""
    kind = problem_type(error)
    status = response.status_code if response is not None else 0
    if permanent is None:
        permanent = kind not in TRANSIENT_TYPES and status < 500 and status != 429
    retry_after = None
    if response is not None:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
    detail = problem_text(error)
    label = error.description or kind
    return AcmeError(
        f"{label}: {detail}" if detail != label else detail,
        permanent=permanent,
        retry_after=retry_after,
        acme_type=kind,
        detail=detail,
    )


def translate(exc: BaseException, response: requests.Response | None = None) -> AcmeError:
    """Map an exception raised by `acme`/`requests` to an `AcmeError`.

    `response` is the last HTTP response seen, used for Retry-After and the status code,
    which the acme library does not keep on its exceptions.
    """
    if isinstance(exc, AcmeError):
        return exc
    if isinstance(exc, messages.Error):
        return from_problem(exc, response)
    if isinstance(exc, requests.exceptions.SSLError):
        # Almost always an untrusted certificate: retrying will not help, a CA bundle will.
        return AcmeError(
            f"TLS error talking to the CA (is its certificate trusted?): {exc}", permanent=True
        )
    if isinstance(exc, requests.exceptions.Timeout):
        return AcmeError("The CA did not answer in time", permanent=False)
    if isinstance(exc, requests.exceptions.ConnectionError):
        return AcmeError(f"Cannot reach the CA: {exc}", permanent=False)
    if isinstance(exc, requests.exceptions.RequestException):
        return AcmeError(f"HTTP error talking to the CA: {exc}", permanent=False)
    if isinstance(exc, acme_errors.NonceError):
        return AcmeError(f"The CA sent no usable nonce: {exc}", permanent=False)
    if isinstance(exc, acme_errors.ClientError) and exc.args:
        first = exc.args[0]
        if isinstance(first, tuple) and first and isinstance(first[0], requests.Response):
            first = first[0]
        if isinstance(first, requests.Response):
            status = first.status_code
            return AcmeError(
                f"The CA answered HTTP {status} {first.reason or ''}".strip(),
                permanent=500 > status != 429,
                retry_after=parse_retry_after(first.headers.get("Retry-After")),
            )
    if isinstance(exc, jose.DeserializationError):
        return AcmeError(f"The CA sent a response this client cannot read: {exc}")
    return AcmeError(f"ACME request failed: {exc}", permanent=False)
