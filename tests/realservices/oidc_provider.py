"""A real OpenID Connect provider in its own process, for single sign-on tests.

Small but complete for the authorization code flow (with PKCE): discovery, an HTML
login page at /authorize, /token (client secret in the body or HTTP Basic), /userinfo
and /jwks, ID tokens signed RS256 with PyJWT. Users and clients come from a JSON file.
For bad-input tests, POST /_test/mode {"mode": ...} makes the next tokens misbehave:
"wrong_audience", "wrong_signature" (signed with a key not in the JWKS), "expired",
or "normal".

    with OidcProvider(tmp_path, users=USERS, redirect_uris=[...]) as idp:
        idp.issuer, idp.client_id, idp.client_secret

Run as `python -m tests.realservices.oidc_provider CONFIG.json PORT`.
"""

import base64
import hashlib
import html
import json
import secrets
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

from .ports import LOOPBACK, free_port, port_open
from .process import Service, log_tail, spawn, wait_ready

CLIENT_ID = "certconsole-test"


class OidcProvider(Service):
    """Starts the provider below as a subprocess on a free loopback port."""

    def __init__(self, workdir: Path, *, users: dict, redirect_uris: list[str]):
        self.workdir = Path(workdir)
        self.port = free_port()
        self.issuer = f"http://{LOOPBACK}:{self.port}"
        self.client_id = CLIENT_ID
        self.client_secret = secrets.token_urlsafe(24)
        self.users = users
        self.redirect_uris = redirect_uris
        self.log_path = self.workdir / "oidc-provider.log"
        self._proc = None

    def _start(self) -> None:
        config = {
            "issuer": self.issuer,
            "clients": {
                self.client_id: {"secret": self.client_secret, "redirect_uris": self.redirect_uris}
            },
            "users": self.users,
        }
        path = self.workdir / "oidc-provider.json"
        path.write_text(json.dumps(config))
        root = Path(__file__).resolve().parents[2]
        self._proc = spawn(
            [sys.executable, "-m", "tests.realservices.oidc_provider", str(path), str(self.port)],
            self.log_path,
            cwd=root,
        )
        wait_ready(
            lambda: port_open(LOOPBACK, self.port),
            what="OpenID Connect provider",
            timeout=15,
            proc=self._proc,
            log_path=self.log_path,
        )

    def set_mode(self, mode: str) -> None:
        import requests

        response = requests.post(f"{self.issuer}/_test/mode", json={"mode": mode}, timeout=5)
        response.raise_for_status()

    def login(self, authorize_url: str, username: str, password: str) -> str:
        """Fill the provider's login form over HTTP; returns the redirect back to the client."""
        import requests

        query = parse_qs(urlparse(authorize_url).query)
        form = {k: v[0] for k, v in query.items()}
        form.update(username=username, password=password)
        response = requests.post(
            f"{self.issuer}/authorize", data=form, allow_redirects=False, timeout=5
        )
        if response.status_code != 302:
            raise AssertionError(f"login refused: {response.status_code} {response.text[:300]}")
        return response.headers["Location"]

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except Exception:
                self._proc.kill()
                self._proc.wait(5)
            self._proc = None

    def log(self) -> str:
        return log_tail(self.log_path, 40)


# --- the provider itself (runs in the subprocess) -------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Provider:
    def __init__(self, config: dict):
        from cryptography.hazmat.primitives.asymmetric import rsa
        from jwt.algorithms import RSAAlgorithm

        self.issuer = config["issuer"]
        self.clients = config["clients"]
        self.users = config["users"]
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.rogue_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        self.jwks = {"keys": [{**jwk, "kid": "test-key", "alg": "RS256", "use": "sig"}]}
        self.codes: dict[str, dict] = {}
        self.tokens: dict[str, str] = {}
        self.mode = "normal"
        self.lock = threading.Lock()

    def discovery(self) -> dict:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "email", "profile", "groups"],
        }

    def claims(self, username: str) -> dict:
        user = self.users[username]
        return {
            "sub": user["sub"],
            "preferred_username": username,
            "email": user.get("email", f"{username}@idp.test"),
            "given_name": user.get("given_name", ""),
            "family_name": user.get("family_name", ""),
            "groups": user.get("groups", []),
        }

    def authorize(self, params: dict) -> tuple[str | None, str]:
        """(redirect location, error): checks the client, redirect URI and the password."""
        client = self.clients.get(params.get("client_id", ""))
        if client is None or params.get("redirect_uri") not in client["redirect_uris"]:
            return None, "Unknown client or redirect URI."
        user = self.users.get(params.get("username", ""))
        if user is None or user["password"] != params.get("password"):
            return None, "Wrong user name or password."
        code = secrets.token_urlsafe(24)
        with self.lock:
            self.codes[code] = {
                "username": params["username"],
                "client_id": params["client_id"],
                "redirect_uri": params["redirect_uri"],
                "nonce": params.get("nonce"),
                "challenge": params.get("code_challenge"),
                "at": time.time(),
            }
        query = urlencode({"code": code, "state": params.get("state", "")})
        return f"{params['redirect_uri']}?{query}", ""

    def token(self, form: dict, basic: tuple[str, str] | None) -> tuple[int, dict]:
        import jwt

        client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret", ""))
        client = self.clients.get(client_id)
        if client is None or not secrets.compare_digest(client["secret"], secret or ""):
            return 401, {"error": "invalid_client"}
        with self.lock:
            grant = self.codes.pop(form.get("code", ""), None)
        if (
            grant is None
            or grant["client_id"] != client_id
            or grant["redirect_uri"] != form.get("redirect_uri")
            or time.time() - grant["at"] > 60
        ):
            return 400, {"error": "invalid_grant"}
        if grant["challenge"]:
            verifier = form.get("code_verifier", "")
            digest = _b64url(hashlib.sha256(verifier.encode()).digest())
            if digest != grant["challenge"]:
                return 400, {"error": "invalid_grant", "error_description": "PKCE"}
        now = int(time.time())
        claims = self.claims(grant["username"])
        payload = {
            "iss": self.issuer,
            "sub": claims["sub"],
            "aud": client_id,
            "iat": now,
            "exp": now + 300,
            "nonce": grant["nonce"],
            "email": claims["email"],
        }
        key = self.key
        if self.mode == "wrong_audience":
            payload["aud"] = "some-other-client"
        elif self.mode == "wrong_signature":
            key = self.rogue_key
        elif self.mode == "expired":
            payload.update(iat=now - 3600, exp=now - 1800)
        id_token = jwt.encode(payload, key, algorithm="RS256", headers={"kid": "test-key"})
        access_token = secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[access_token] = grant["username"]
        body = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": id_token,
        }
        return 200, body


LOGIN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Test identity provider</title></head><body>
<h1>Test identity provider</h1>
{error}
<form method="post" action="/authorize">
{hidden}
<p><label for="username">IdP user name</label> <input id="username" name="username"></p>
<p><label for="password">IdP password</label>
<input id="password" name="password" type="password"></p>
<p><button type="submit">Sign in at the provider</button></p>
</form></body></html>"""


def make_handler(provider: Provider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: bytes, content_type: str, headers=None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, data: dict) -> None:
            self._send(status, json.dumps(data).encode(), "application/json")

        def _form(self) -> dict:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            if self.headers.get("Content-Type", "").startswith("application/json"):
                return json.loads(raw or "{}")
            return {k: v[0] for k, v in parse_qs(raw).items()}

        def _login_page(self, params: dict, error: str = "", status: int = 200) -> None:
            hidden = "".join(
                f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                for k, v in params.items()
                if k not in ("username", "password")
            )
            page = LOGIN_PAGE.format(
                error=f'<p role="alert">{html.escape(error)}</p>' if error else "", hidden=hidden
            )
            self._send(status, page.encode(), "text/html; charset=utf-8")

        def do_GET(self) -> None:
            url = urlparse(self.path)
            params = {k: v[0] for k, v in parse_qs(url.query).items()}
            if url.path == "/.well-known/openid-configuration":
                self._json(200, provider.discovery())
            elif url.path == "/jwks":
                self._json(200, provider.jwks)
            elif url.path == "/authorize":
                self._login_page(params)
            elif url.path == "/userinfo":
                token = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
                username = provider.tokens.get(token)
                if username is None:
                    self._json(401, {"error": "invalid_token"})
                else:
                    self._json(200, provider.claims(username))
            else:
                self._json(404, {"error": "not_found"})

        def do_POST(self) -> None:
            url = urlparse(self.path)
            form = self._form()
            if url.path == "/authorize":
                location, error = provider.authorize(form)
                if location is None:
                    self._login_page(form, error, status=400)
                else:
                    self._send(302, b"", "text/plain", {"Location": location})
            elif url.path == "/token":
                basic = None
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    user, _, secret = base64.b64decode(header[6:]).decode().partition(":")
                    basic = (user, secret)
                status, body = provider.token(form, basic)
                self._json(status, body)
            elif url.path == "/_test/mode":
                provider.mode = form.get("mode", "normal")
                self._json(200, {"mode": provider.mode})
            else:
                self._json(404, {"error": "not_found"})

        def log_message(self, format: str, *args) -> None:
            sys.stderr.write(f"{self.command} {self.path.split('?')[0]} {args[1:]}\n")

    return Handler


def main(config_path: str, port: str) -> None:
    provider = Provider(json.loads(Path(config_path).read_text()))
    server = ThreadingHTTPServer((LOOPBACK, int(port)), make_handler(provider))
    server.serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:3])
