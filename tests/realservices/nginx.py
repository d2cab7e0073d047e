"""nginx as a TLS deployment target: one port, one server block per certificate (SNI)."""

import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import ServiceError
from .ports import LOOPBACK, free_port, port_open
from .process import (
    Service,
    children,
    log_tail,
    spawn,
    stop_process,
    wait_ready,
    which,
)


@dataclass
class ServerBlock:
    """A `server {}` answering for `names` with one certificate; `default` takes unknown SNI."""

    names: list[str]
    cert_path: Path
    key_path: Path
    default: bool = False


class Nginx(Service):
    """nginx under `prefix_dir` (conf, logs, pid, temp files), listening on 127.0.0.1:`port`.

    The master runs in the foreground of its own process group; `test_command()` and
    `reload_command()` are what a deployment driver would run against this instance.
    """

    def __init__(
        self,
        prefix_dir: Path,
        servers: Sequence[ServerBlock],
        *,
        port: int | None = None,
        timeout: float = 10.0,
    ):
        self.binary = which("nginx", "nginx-light")
        self.prefix = Path(prefix_dir).resolve()
        self.servers = list(servers)
        self.host = LOOPBACK
        self.port = port or free_port()
        self.timeout = timeout
        self.config_path = self.prefix / "nginx.conf"
        self.error_log_path = self.prefix / "logs" / "error.log"
        self.pid_path = self.prefix / "logs" / "nginx.pid"
        self._proc = None

    def _base_args(self) -> list[str]:
        # -e: nginx would otherwise open /var/log/nginx/error.log before reading the config.
        return [
            self.binary,
            *("-p", f"{self.prefix}/"),
            *("-c", str(self.config_path)),
            *("-e", "logs/error.log"),
        ]

    def test_command(self) -> list[str]:
        return [*self._base_args(), "-t"]

    def reload_command(self) -> list[str]:
        return [*self._base_args(), "-s", "reload"]

    def write_config(self) -> None:
        """Render nginx.conf from `servers` (start() does it; call it again before reload())."""
        blocks = []
        for server in self.servers:
            default = " default_server" if server.default else ""
            blocks.append(
                f"""    server {{
        listen {self.host}:{self.port} ssl{default};
        server_name {" ".join(server.names)};
        ssl_certificate {Path(server.cert_path).resolve()};
        ssl_certificate_key {Path(server.key_path).resolve()};
        return 200 "{server.names[0]}\\n";
    }}
"""
            )
        self.config_path.write_text(
            f"""worker_processes 1;
pid logs/nginx.pid;
error_log logs/error.log notice;
events {{ worker_connections 64; }}
http {{
    access_log off;
    ssl_protocols TLSv1.2 TLSv1.3;  # nginx < 1.23.4 leaves TLSv1.3 out by default
    keepalive_timeout 0;  # old workers leave at once on reload
    client_body_temp_path tmp/client_body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
{"".join(blocks)}}}
"""
        )

    def _start(self) -> None:
        for sub in ("logs", "tmp"):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        self.write_config()
        self._proc = spawn([*self._base_args(), "-g", "daemon off;"], self.error_log_path)
        wait_ready(
            lambda: port_open(self.host, self.port) and bool(self.worker_pids()),
            what="nginx",
            timeout=self.timeout,
            proc=self._proc,
            log_path=self.error_log_path,
        )

    def worker_pids(self) -> set[int]:
        return children(self._proc.pid) if self._proc is not None else set()

    def reload(self) -> None:
        """Test the config, reload, and return once only new workers serve."""
        test = subprocess.run(self.test_command(), capture_output=True, text=True, check=False)
        if test.returncode != 0:
            raise ServiceError(f"nginx -t failed:\n{test.stderr}")
        old = self.worker_pids()
        subprocess.run(self.reload_command(), capture_output=True, check=True)
        # Reload is asynchronous: old workers keep handshaking with the old certificates
        # until they exit, so wait for a worker generation that shares no PID with the old one.
        deadline = time.monotonic() + self.timeout
        while True:
            current = self.worker_pids()
            if current and not current & old:
                return
            if time.monotonic() >= deadline:
                raise ServiceError(
                    f"nginx reload not effective after {self.timeout:g} s:\n"
                    f"{log_tail(self.error_log_path)}"
                )
            time.sleep(0.01)

    def stop(self) -> None:
        """Graceful quit (SIGQUIT), then SIGKILL for whatever is left."""
        stop_process(self._proc, sig=signal.SIGQUIT)
        self._proc = None
