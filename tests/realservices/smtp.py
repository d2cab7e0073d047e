"""An in-process SMTP server (aiosmtpd) that keeps what it receives, for notification tests."""

import email
import email.policy
import re
import threading
import time
from email.message import EmailMessage

from aiosmtpd.controller import Controller

from .ports import LOOPBACK, free_port
from .process import Service


class _Handler:
    def __init__(self, sink: "SmtpSink"):
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.sink.reject is not None and self.sink.reject.search(address):
            return f"550 5.1.1 <{address}>: Recipient address rejected"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(raw, policy=email.policy.default)
        # Envelope addresses differ from the headers for Bcc; keep them like aiosmtpd's Message.
        message["X-MailFrom"] = envelope.mail_from
        message["X-RcptTo"] = ", ".join(envelope.rcpt_tos)
        self.sink._received(message)
        return "250 Message accepted for delivery"


class SmtpSink(Service):
    """SMTP server on a free loopback port collecting parsed `EmailMessage`s.

    `reject` is a regular expression: recipients matching it get `550` (a bad address).
    `stop()` closes the port, so senders then see a server that is down.
    """

    def __init__(self, *, reject: str | re.Pattern[str] | None = None, port: int | None = None):
        self.host = LOOPBACK
        self.port = port or free_port()  # port=0 fails: the controller self-connects to check
        self.reject = re.compile(reject) if isinstance(reject, str) else reject
        self._messages: list[EmailMessage] = []
        self._changed = threading.Condition()
        self._controller: Controller | None = None

    @property
    def messages(self) -> list[EmailMessage]:
        """A snapshot of the messages received so far, oldest first."""
        with self._changed:
            return list(self._messages)

    def _received(self, message: EmailMessage) -> None:
        with self._changed:
            self._messages.append(message)
            self._changed.notify_all()

    def clear(self) -> None:
        with self._changed:
            self._messages.clear()

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[EmailMessage]:
        """Block until at least `count` messages arrived; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"expected {count} message(s) within {timeout:g} s, "
                        f"got {len(self._messages)}"
                    )
                self._changed.wait(remaining)
            return list(self._messages)

    def _start(self) -> None:
        # A new controller per start: a stopped one cannot be started again.
        self._controller = Controller(
            _Handler(self), hostname=self.host, port=self.port, ready_timeout=5.0
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
