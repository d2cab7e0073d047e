"""OpenSSH sshd on a high port, key-only, for SSH/SFTP deployment tests."""

import getpass
import socket
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from . import ServiceUnavailable
from .ports import LOOPBACK, free_port
from .process import Service, spawn, stop_process, wait_ready, which

_PRIVSEP_DIR = Path("/run/sshd")


def _write_keypair(path: Path) -> str:
    """Write an ed25519 key in OpenSSH format (mode 600) and `path.pub`; return the public line."""
    key = ed25519.Ed25519PrivateKey.generate()
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)  # sshd and ssh refuse readable private keys
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    public_line = public.decode()
    path.with_name(f"{path.name}.pub").write_text(f"{public_line}\n")
    return public_line


class Sshd(Service):
    """sshd on 127.0.0.1:`port` with its own ed25519 host key, accepting one client key.

    `username` (the current user) logs in with `client_key_path`; pin `host_key_public`
    (or `known_hosts_line`) on the client side.
    """

    def __init__(self, directory: Path, *, port: int | None = None, timeout: float = 10.0):
        self.binary = which("sshd", "openssh-server")
        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.host = LOOPBACK
        self.port = port or free_port()
        self.username = getpass.getuser()
        self.timeout = timeout
        self.host_key_path = self.directory / "ssh_host_ed25519_key"
        self.client_key_path = self.directory / "client_ed25519"
        self.authorized_keys_path = self.directory / "authorized_keys"
        self.config_path = self.directory / "sshd_config"
        self.pid_path = self.directory / "sshd.pid"
        self.log_path = self.directory / "sshd.log"
        self.host_key_public = _write_keypair(self.host_key_path)
        self.client_key_public = _write_keypair(self.client_key_path)
        self.authorized_keys_path.write_text(f"{self.client_key_public}\n")
        self.known_hosts_line = f"[{self.host}]:{self.port} {self.host_key_public}"
        self._proc = None

    def write_config(self) -> None:
        self.config_path.write_text(
            f"""Port {self.port}
ListenAddress {self.host}
HostKey {self.host_key_path}
PidFile {self.pid_path}
AuthorizedKeysFile {self.authorized_keys_path}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
# The files live in a test's scratch folder, whose modes sshd would refuse otherwise.
StrictModes no
PermitRootLogin prohibit-password
PrintMotd no
Subsystem sftp internal-sftp
"""
        )

    def _start(self) -> None:
        if not _PRIVSEP_DIR.is_dir():
            try:
                _PRIVSEP_DIR.mkdir(mode=0o755, parents=True)
            except OSError as exc:
                raise ServiceUnavailable(
                    f"sshd needs {_PRIVSEP_DIR} ({exc.strerror}); create it: "
                    f"mkdir -p -m 0755 {_PRIVSEP_DIR}"
                ) from exc
        self.write_config()
        # Absolute binary path: sshd re-executes itself for every connection.
        self._proc = spawn([self.binary, "-D", "-e", "-f", str(self.config_path)], self.log_path)
        wait_ready(
            self._banner,
            what="sshd",
            timeout=self.timeout,
            proc=self._proc,
            log_path=self.log_path,
        )

    def _banner(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as sock:
                return sock.recv(64).startswith(b"SSH-")
        except OSError:
            return False

    def stop(self) -> None:
        stop_process(self._proc)
        self._proc = None
