"""Webhook: POST a signed JSON deployment notice; the receiver installs the certificate.

Signature: `X-CertConsole-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`
with `X-CertConsole-Timestamp: <unix seconds>`; receivers check it with verify_signature().
"""

import datetime as dt
import email.utils
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from deployments.drivers._files import OptionReader
from deployments.drivers.base import Bundle, Driver, DriverError, PushResult

EVENT = "certificate.deployed"
BODY_LIMIT = 2000  # characters of the receiver's answer kept on the record
BACKOFF = 0.5  # seconds before the first retry, doubled each time
MAX_RETRY_AFTER = 10.0  # a receiver's Retry-After is honoured up to this many seconds


def sign(secret: str | bytes, timestamp: str | int, body: bytes) -> str:
    """The X-CertConsole-Signature header value for body sent at timestamp."""
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(
    secret: str | bytes,
    timestamp: str | int | None,
    body: bytes | str,
    header: str | None,
    max_age: int = 300,
) -> bool:
    """True when header signs timestamp + body with secret and timestamp is within max_age s."""
    if not header or timestamp is None:
        return False
    try:
        sent = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(time.time() - sent) > max_age:
        return False
    if isinstance(body, str):
        body = body.encode()
    return hmac.compare_digest(sign(secret, str(timestamp).strip(), body), header.strip())


@dataclass(frozen=True)
class WebhookOptions:
    url: str
    include_key: bool = False
    timeout: float = 10.0
    retries: int = 3


class WebhookDriver(Driver):
    """POSTs the notice, retrying with backoff on connection errors, 5xx and 429."""

    kind = "webhook"
    label = "Webhook"
    credential_fields = ("secret",)
    Options = WebhookOptions

    # Patched by tests that do not want to wait.
    sleep = staticmethod(time.sleep)

    def __init__(self, options: dict, credentials: dict | None = None):
        super().__init__(options, credentials)
        self.needs_private_key = self.options.include_key

    @classmethod
    def parse_options(cls, options: dict) -> WebhookOptions:
        reader = OptionReader(options, cls.kind)
        parsed = WebhookOptions(
            url=reader.string("url"),
            include_key=reader.boolean("include_key", default=False),
            timeout=reader.number("timeout", default=10.0, low=1, high=60),
            retries=reader.integer("retries", default=3, low=0, high=5),
        )
        reader.finish()
        url = urlsplit(parsed.url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise DriverError("url must be an http:// or https:// URL.", permanent=True)
        return parsed

    def describe(self) -> str:
        key = " (with the private key)" if self.options.include_key else ""
        return f"POST a signed notice to {self.describe_url()}{key}"

    def notice(self, bundle: Bundle, delivery: str) -> dict:
        payload = {
            "event": EVENT,
            "delivery": delivery,
            "certificate": bundle.name,
            "sha256": bundle.sha256,
            "fetch_url": bundle.fetch_url,
            "cert_pem": bundle.cert_pem.decode(),
            "chain_pem": bundle.chain_pem.decode(),
        }
        if self.options.include_key and bundle.key_pem is not None:
            payload["key_pem"] = bundle.key_pem.decode()
        return payload

    def push(self, bundle: Bundle) -> PushResult:
        o = self.options
        secret = self.credentials.get("secret")
        if not secret:
            raise DriverError("The webhook secret is missing from the credentials.", permanent=True)
        delivery = str(uuid.uuid4())
        payload = self.notice(bundle, delivery)
        body = json.dumps(payload, separators=(",", ":")).encode()
        details: dict = {
            "url": self.describe_url(),
            "delivery": delivery,
            "key_included": "key_pem" in payload,
            "attempts": [],
        }
        attempts = o.retries + 1
        for attempt in range(1, attempts + 1):
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "CertConsole-Webhook/1",
                "X-CertConsole-Event": EVENT,
                "X-CertConsole-Delivery": delivery,
                "X-CertConsole-Timestamp": timestamp,
                "X-CertConsole-Signature": sign(secret, timestamp, body),
            }
            started = time.monotonic()
            try:
                response = requests.post(
                    o.url,
                    data=body,
                    headers=headers,
                    timeout=o.timeout,
                    allow_redirects=False,
                    stream=True,  # read only the start of a large answer
                )
                answer = _read_start(response)
            except requests.RequestException as exc:
                reason = _reason(exc)
                details["attempts"].append({"error": reason, "elapsed": _since(started)})
                if attempt == attempts:
                    raise DriverError(
                        f"The webhook at {self.describe_url()} could not be reached after "
                        f"{attempts} attempt(s): {reason}.",
                        details=details,
                    ) from exc
                self.sleep(BACKOFF * 2 ** (attempt - 1))
                continue

            details["attempts"].append({"status": response.status_code, "elapsed": _since(started)})
            details["status_code"] = response.status_code
            details["response_body"] = answer
            status = response.status_code
            if 200 <= status < 300:
                return PushResult(
                    summary=f"The webhook answered {status} after {attempt} attempt(s).",
                    details=details,
                )
            retryable = status == 429 or status >= 500
            if not retryable or attempt == attempts:
                raise DriverError(
                    f"The webhook at {self.describe_url()} answered {status}"
                    + (f" after {attempt} attempts" if attempt > 1 else "")
                    + f": {answer[:200].strip() or response.reason}",
                    permanent=not retryable,
                    details=details,
                )
            delay = _retry_after(response.headers.get("Retry-After"))
            self.sleep(delay if delay is not None else BACKOFF * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def describe_url(self) -> str:
        """The URL without its query, which may carry a token."""
        url = urlsplit(self.options.url)
        return f"{url.scheme}://{url.netloc}{url.path}"


def _read_start(response: requests.Response) -> str:
    """The first BODY_LIMIT characters of the answer, without downloading all of it."""
    try:
        data = b""
        for chunk in response.iter_content(4096):
            data += chunk
            if len(data) >= BODY_LIMIT * 4:  # enough bytes for BODY_LIMIT characters
                break
    finally:
        response.close()
    return data.decode(response.encoding or "utf-8", errors="replace")[:BODY_LIMIT]


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)


def _reason(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed (" + str(exc.args[0] if exc.args else exc)[-200:] + ")"
    return str(exc)[-200:]


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta or HTTP date), capped at MAX_RETRY_AFTER."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, min((when - dt.datetime.now(dt.UTC)).total_seconds(), MAX_RETRY_AFTER))
