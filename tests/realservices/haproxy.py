"""HAProxy terminating TLS with several certificates, its runtime API on an admin socket."""

import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from . import ServiceError
from .ports import LOOPBACK, free_port, port_open
from .process import Service, log_tail, read_pid, stop_pid, wait_ready, which

# sun_path holds 108 bytes; pytest's tmp_path for a long test name can exceed that.
_MAX_SOCKET_PATH = 100


class HAProxy(Service):
    """haproxy -D on 127.0.0.1:`port` with `bind ... ssl crt a.pem crt b.pem`.

    Each PEM holds the full chain and the key. `runtime_api()` talks to `socket_path`
    (`level admin`), where a certificate is named by the exact path given in `certs`.
    """

    def __init__(
        self,
        directory: Path,
        certs: Sequence[Path],
        *,
        port: int | None = None,
        timeout: float = 10.0,
    ):
        self.binary = which("haproxy", "haproxy")
        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.certs = [Path(c).resolve() for c in certs]
        self.host = LOOPBACK
        self.port = port or free_port()
        self.timeout = timeout
        self.config_path = self.directory / "haproxy.cfg"
        self.pid_path = self.directory / "haproxy.pid"
        self.log_path = self.directory / "haproxy.log"
        self._socket_dir: Path | None = None
        self.socket_path = self.directory / "haproxy.sock"
        if len(str(self.socket_path)) > _MAX_SOCKET_PATH:
            self._socket_dir = Path(tempfile.mkdtemp(prefix="haproxy-"))
            self.socket_path = self._socket_dir / "haproxy.sock"
        self._pid: int | None = None

    def write_config(self) -> None:
        crts = " ".join(f"crt {c}" for c in self.certs)
        self.config_path.write_text(
            f"""global
    stats socket {self.socket_path} mode 600 level admin
    log stderr format short local0

defaults
    mode http
    timeout connect 5s
    timeout client 10s
    timeout server 10s

frontend fe
    bind {self.host}:{self.port} ssl {crts}
    http-request return status 200 content-type text/plain string "ok"
"""
        )

    def _start(self) -> None:
        self.write_config()
        # -D forks a daemon (its own session) and exits; a bad config makes it exit non-zero.
        with open(self.log_path, "ab") as log:
            daemonize = subprocess.run(
                [self.binary, "-D", "-f", str(self.config_path), "-p", str(self.pid_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=self.timeout,
                check=False,
            )
        if daemonize.returncode != 0:
            raise ServiceError(
                f"haproxy exited with status {daemonize.returncode}:\n{log_tail(self.log_path)}"
            )
        self._pid = read_pid(self.pid_path)
        wait_ready(
            lambda: self.socket_path.exists() and port_open(self.host, self.port),
            what="haproxy",
            timeout=self.timeout,
            pid=lambda: self._pid,
            log_path=self.log_path,
        )

    def runtime_api(self, command: str, payload: str | None = None) -> str:
        """Send one command (payload with `<<`, ended by an empty line) and return the answer."""
        data = f"{command} <<\n{payload.strip()}\n\n" if payload else f"{command}\n"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            sock.connect(str(self.socket_path))
            sock.sendall(data.encode())
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def stop(self) -> None:
        stop_pid(self._pid or read_pid(self.pid_path))
        self._pid = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
