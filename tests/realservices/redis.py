"""A private redis-server without persistence, for tests that stop or flush Redis on purpose."""

import socket
from pathlib import Path

from .ports import LOOPBACK, free_port
from .process import Service, spawn, stop_process, wait_ready, which


class RedisServer(Service):
    """redis-server on a free loopback port; `url` is ready for redis-py, RQ and Django."""

    def __init__(self, directory: Path, *, port: int | None = None, timeout: float = 10.0):
        self.binary = which("redis-server", "redis-server")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.host = LOOPBACK
        self.port = port or free_port()
        self.url = f"redis://{self.host}:{self.port}/0"
        self.log_path = self.directory / "redis.log"
        self.timeout = timeout
        self._proc = None

    def _start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", self.host]
        args += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        self._proc = spawn(args, self.log_path)
        wait_ready(
            self.ping,
            what="redis-server",
            timeout=self.timeout,
            proc=self._proc,
            log_path=self.log_path,
        )

    def ping(self) -> bool:
        """True when the server answers PING (no client library needed)."""
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        stop_process(self._proc)
        self._proc = None
