"""Notification channels: the digest email and the signed webhook. No database access here.

`inventory.reminders` decides what is due and records what went out; this module only
renders and delivers, and raises `DeliveryError` when the other side did not accept.
"""

import hashlib
import hmac
import json
import smtplib
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import datetime

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

SIGNATURE_HEADER = "X-CertConsole-Signature"
TIMESTAMP_HEADER = "X-CertConsole-Timestamp"
WEBHOOK_TIMEOUT = 10


class DeliveryError(Exception):
    """The mail server or webhook did not accept the notification; try again next run."""


@dataclass(frozen=True)
class Item:
    """One line of a digest: a certificate that crossed a threshold, or an event about it."""

    certificate_id: int
    name: str
    project: str
    domains: list[str]
    not_after: datetime | None
    days_left: int | None
    deployed_count: int
    url: str
    kind: str = "expiry"
    threshold: int | None = None
    message: str = ""
    renewal: str = "not set up"
    renewal_last_result: str = ""

    @property
    def expired(self) -> bool:
        return self.days_left is not None and self.days_left < 0

    @property
    def days_ago(self) -> int:
        return -self.days_left if self.expired else 0

    def as_json(self) -> dict:
        data = asdict(self)
        data["not_after"] = self.not_after.isoformat() if self.not_after else None
        return data


@dataclass
class Digest:
    """Everything one recipient gets in one run."""

    recipient: str
    items: list[Item] = field(default_factory=list)

    @property
    def expired_count(self) -> int:
        return sum(1 for item in self.items if item.kind == "expiry" and item.expired)

    @property
    def events(self) -> list[Item]:
        return [item for item in self.items if item.kind != "expiry"]

    @property
    def reminders(self) -> list[Item]:
        return sorted(
            (item for item in self.items if item.kind == "expiry"),
            key=lambda item: (item.days_left if item.days_left is not None else 0, item.name),
        )

    def subject(self) -> str:
        count = len(self.items)
        if self.events and not self.reminders:
            first = self.events[0]
            return f"[CertConsole] {first.message.splitlines()[0][:120]}"
        noun = "certificate needs" if count == 1 else "certificates need"
        expired = f" ({self.expired_count} expired)" if self.expired_count else ""
        return f"[CertConsole] {count} {noun} attention{expired}"


def link(path: str) -> str:
    """An absolute link for emails and webhooks, from CERTCONSOLE_BASE_URL."""
    return settings.CERTCONSOLE_BASE_URL.rstrip("/") + path


def build_email(digest: Digest) -> EmailMultiAlternatives:
    context = {
        "digest": digest,
        "reminders": digest.reminders,
        "events": digest.events,
        "notifications_url": link("/certificates/notifications/"),
        "preferences_url": link("/projects/me/preferences/"),
    }
    message = EmailMultiAlternatives(
        subject=digest.subject(),
        body=render_to_string("email/reminder_digest.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[digest.recipient],
    )
    message.attach_alternative(render_to_string("email/reminder_digest.html", context), "text/html")
    return message


def send_email(connection, digest: Digest) -> None:
    """Deliver one digest over an open (or openable) mail connection; DeliveryError if refused."""
    try:
        sent = connection.send_messages([build_email(digest)])
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(_describe_smtp_error(exc)) from exc
    if not sent:
        raise DeliveryError("The mail server did not accept the message.")


def _describe_smtp_error(exc: Exception) -> str:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "; ".join(
            f"{address}: {code} {reply.decode(errors='replace')}"
            for address, (code, reply) in exc.recipients.items()
        )
    return f"{type(exc).__name__}: {exc}"[:500]


def webhook_body(project: str, items: list[Item], now: datetime) -> dict:
    """A JSON body that Slack-compatible receivers show (text, blocks) and others can parse."""
    lines = [_item_line(item) for item in items]
    noun = "certificate needs" if len(items) == 1 else "certificates need"
    text = f"CertConsole ({project}): {len(items)} {noun} attention"
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}}]
    # Slack caps a section at 3000 characters and a message at 50 blocks.
    for line in lines[:45]:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": line[:2900]}})
    if len(lines) > 45:
        more = f"…and {len(lines) - 45} more"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    return {
        "text": text + "\n" + "\n".join(lines),
        "blocks": blocks,
        "event": "certconsole.notifications",
        "project": project,
        "sent_at": now.isoformat(),
        "items": [item.as_json() for item in items],
    }


def _item_line(item: Item) -> str:
    if item.kind != "expiry":
        return f"• <{item.url}|{item.name}>: {item.message}"
    if item.expired:
        when = f"expired {-item.days_left} day(s) ago" if item.days_left else "expired"
    else:
        when = f"expires in {item.days_left} day(s)"
    expiry = item.not_after.date().isoformat() if item.not_after else "?"
    return f"• <{item.url}|{item.name}> ({', '.join(item.domains[:3])}) {when}, on {expiry}"


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """sha256=HMAC-SHA256(secret, timestamp + "." + body), hex: what receivers recompute."""
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def send_webhook(url: str, secret: bytes, payload: dict) -> None:
    """POST payload as JSON with the signature headers; DeliveryError unless a 2xx answer."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "User-Agent": "CertConsole"}
    if secret:
        headers[TIMESTAMP_HEADER] = timestamp
        headers[SIGNATURE_HEADER] = sign(secret, timestamp, body)
    if not url.startswith(("https://", "http://")):
        raise DeliveryError("The webhook URL must start with http:// or https://.")
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT) as response:  # noqa: S310
            status = response.status
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"The webhook answered {exc.code}.") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise DeliveryError(f"The webhook is unreachable: {exc}"[:500]) from exc
    if not 200 <= status < 300:
        raise DeliveryError(f"The webhook answered {status}.")
