"""An HTTP endpoint that records the requests it gets, for webhook deployment tests."""

import json
import threading
import time
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .ports import LOOPBACK, free_port
from .process import Service


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the receiver saw it; `headers` look up names case-insensitively."""

    method: str
    path: str
    headers: Message
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver(Service):
    """Threaded HTTP server on a free loopback port that answers every request the same way.

    `status`, `response_body`, `response_headers` and `delay` may be changed while it runs
    (a 500 to test retries, a delay longer than the client's timeout).
    """

    def __init__(
        self,
        *,
        status: int = 200,
        response_body: bytes = b'{"ok": true}',
        response_headers: dict[str, str] | None = None,
        delay: float = 0.0,
        port: int | None = None,
    ):
        self.host = LOOPBACK
        self.port = port or free_port()
        self.url = f"http://{self.host}:{self.port}/"
        self.status = status
        self.response_body = response_body
        self.response_headers = response_headers or {"Content-Type": "application/json"}
        self.delay = delay
        self._requests: list[ReceivedRequest] = []
        self._changed = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def requests(self) -> list[ReceivedRequest]:
        """A snapshot of the requests received so far, oldest first."""
        with self._changed:
            return list(self._requests)

    def _received(self, request: ReceivedRequest) -> None:
        with self._changed:
            self._requests.append(request)
            self._changed.notify_all()

    def wait_for(self, count: int = 1, timeout: float = 5.0) -> list[ReceivedRequest]:
        """Block until at least `count` requests arrived; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._requests) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"expected {count} request(s) within {timeout:g} s, "
                        f"got {len(self._requests)}"
                    )
                self._changed.wait(remaining)
            return list(self._requests)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def handle_any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                receiver._received(ReceivedRequest(self.command, self.path, self.headers, body))
                if receiver.delay:
                    time.sleep(receiver.delay)
                self.send_response(receiver.status)
                for name, value in receiver.response_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(receiver.response_body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(receiver.response_body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = handle_any

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def _start(self) -> None:
        self._server = ThreadingHTTPServer((self.host, self.port), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # shutdown() waits up to one poll interval
            name=f"webhook-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
