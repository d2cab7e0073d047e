"""A bare HTTP-01 responder on the port Pebble's VA connects to (tests and benchmarks)."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Http01Responder:
    """Serves /.well-known/acme-challenge/<token> from `tokens` (token → key authorization)."""

    def __init__(self, port: int, host: str = "127.0.0.1"):
        tokens: dict[str, str] = {}
        self.tokens = tokens

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = tokens.get(self.path.rsplit("/", 1)[-1])
                self.send_response(200 if body else 404)
                self.end_headers()
                self.wfile.write((body or "").encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
