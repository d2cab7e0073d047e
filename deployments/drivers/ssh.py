"""A host reached over SSH: SFTP upload beside the target, rename into place, check, reload.

The server's host key is pinned in the options (`host_key`, an OpenSSH public key line).
Nothing is uploaded before the server proved it holds that key; a host without a pinned key
is refused with the fingerprint to approve (see fetch_host_key).
"""

import base64
import binascii
import contextlib
import io
import posixpath
import secrets
import socket
import time
from dataclasses import dataclass

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from deployments.drivers._files import OptionReader, tail
from deployments.drivers.base import Bundle, Driver, DriverError, PushResult

CERT_MODE = 0o644
KEY_MODE = 0o600


@dataclass(frozen=True)
class HostKey:
    """A server's public host key: the line to pin and its fingerprint for a person to compare."""

    line: str  # "ssh-ed25519 AAAA…"
    fingerprint_sha256: str  # "SHA256:…" as `ssh-keygen -lf` prints it


def _fingerprint(key: paramiko.PKey) -> str:
    return key.fingerprint  # "SHA256:<unpadded base64>"


def _host_key(key: paramiko.PKey) -> HostKey:
    return HostKey(f"{key.get_name()} {key.get_base64()}", _fingerprint(key))


def parse_host_key(line: str) -> paramiko.PKey:
    """The key in an OpenSSH public key line (a known_hosts line with a host in front works too)."""
    words = line.split()
    for i, word in enumerate(words[:-1]):
        if word.startswith(("ssh-", "ecdsa-", "sk-", "rsa-")):
            try:
                return paramiko.PKey.from_type_string(word, base64.b64decode(words[i + 1]))
            except (binascii.Error, ValueError, paramiko.SSHException):
                break
    raise DriverError(
        "host_key must be an OpenSSH public key line like 'ssh-ed25519 AAAA…'.", permanent=True
    )


def _unreachable(host: str, port: int, exc: Exception) -> DriverError:
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        reason = "timed out"
    return DriverError(f"Cannot reach {host}:{port}: {reason}.", permanent=False)


def fetch_host_key(host: str, port: int = 22, timeout: float = 5) -> HostKey:
    """Connect, read the server's host key, disconnect: no login, nothing trusted yet.

    The UI shows the fingerprint for a person to approve on first use.
    """
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise _unreachable(host, port, exc) from exc
    transport = paramiko.Transport(sock)
    try:
        transport.banner_timeout = timeout
        transport.start_client(timeout=timeout)
        return _host_key(transport.get_remote_server_key())
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise _unreachable(host, port, exc) from exc
    finally:
        transport.close()


def load_private_key(pem: str | bytes, passphrase: str | None = None) -> paramiko.PKey:
    """A paramiko key from PEM text: OpenSSH, PKCS#8 or traditional; RSA, ECDSA or Ed25519."""
    data = pem.encode() if isinstance(pem, str) else pem
    password = passphrase.encode() if passphrase else None
    try:
        try:
            key = serialization.load_ssh_private_key(data, password)
        except ValueError:
            key = serialization.load_pem_private_key(data, password)
    except TypeError as exc:  # encrypted without a passphrase, or the reverse
        raise DriverError(f"The SSH private key cannot be read: {exc}", permanent=True) from exc
    except ValueError as exc:
        raise DriverError(
            "The SSH private key cannot be read (wrong passphrase, or not an OpenSSH/PKCS#8 "
            "PEM key).",
            permanent=True,
        ) from exc
    classes = {
        rsa.RSAPrivateKey: paramiko.RSAKey,
        ec.EllipticCurvePrivateKey: paramiko.ECDSAKey,
        ed25519.Ed25519PrivateKey: paramiko.Ed25519Key,
    }
    for crypto_class, key_class in classes.items():
        if isinstance(key, crypto_class):
            # paramiko reads every type from the OpenSSH container; this stays in memory.
            openssh = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            )
            return key_class.from_private_key(io.StringIO(openssh.decode()))
    raise DriverError(
        f"SSH keys of type {type(key).__name__} are not supported (use Ed25519, ECDSA or RSA).",
        permanent=True,
    )


@dataclass(frozen=True)
class SshOptions:
    host: str
    username: str
    fullchain_path: str
    key_path: str
    reload_command: str
    check_command: str | None = None
    host_key: str | None = None
    port: int = 22
    timeout: float = 15.0  # seconds for connecting and for each command


class SshDriver(Driver):
    """Uploads over SFTP with a pinned host key, runs the check and reload commands remotely."""

    kind = "ssh"
    label = "SSH host"
    credential_fields = ("private_key", "passphrase", "password")
    Options = SshOptions

    @classmethod
    def parse_options(cls, options: dict) -> SshOptions:
        reader = OptionReader(options, cls.kind)
        host_key = reader.string("host_key", required=False)
        parsed = SshOptions(
            host=reader.string("host"),
            port=reader.integer("port", default=22, low=1, high=65535),
            username=reader.string("username"),
            fullchain_path=reader.path("fullchain_path"),
            key_path=reader.path("key_path"),
            check_command=reader.command_line("check_command", required=False),
            reload_command=reader.command_line("reload_command"),
            host_key=host_key,
            timeout=reader.number("timeout", default=15.0, low=1, high=600),
        )
        reader.finish()
        if host_key:
            parse_host_key(host_key)
        if parsed.fullchain_path == parsed.key_path:
            raise DriverError("key_path must differ from fullchain_path.", permanent=True)
        return parsed

    def describe(self) -> str:
        o = self.options
        return (
            f"{o.username}@{o.host}:{o.port}: {o.fullchain_path} + {o.key_path}, "
            f"reloaded with `{o.reload_command}`"
        )

    # Connection

    def _auth(self) -> dict:
        creds = self.credentials
        if creds.get("private_key"):
            return {"pkey": load_private_key(creds["private_key"], creds.get("passphrase"))}
        if creds.get("password"):
            return {"password": creds["password"]}
        raise DriverError(
            "SSH credentials are missing: give a private_key (PEM) or a password.", permanent=True
        )

    def _pinned_key(self) -> paramiko.PKey:
        o = self.options
        if o.host_key:
            return parse_host_key(o.host_key)
        seen = fetch_host_key(o.host, o.port, timeout=o.timeout)
        raise DriverError(
            f"The SSH host key of {o.host}:{o.port} is not approved yet. Its fingerprint is "
            f"{seen.fingerprint_sha256}; if that is the server's, approve it by setting "
            f"host_key to {seen.line!r}.",
            permanent=True,
        )

    def connect(self) -> paramiko.SSHClient:
        """Log in, trusting only the pinned host key (RejectPolicy for anything else)."""
        o = self.options
        auth = self._auth()
        pinned = self._pinned_key()
        client = paramiko.SSHClient()
        known_as = o.host if o.port == 22 else f"[{o.host}]:{o.port}"
        client.get_host_keys().add(known_as, pinned.get_name(), pinned)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(
                o.host,
                port=o.port,
                username=o.username,
                look_for_keys=False,
                allow_agent=False,
                timeout=o.timeout,
                banner_timeout=o.timeout,
                auth_timeout=o.timeout,
                channel_timeout=o.timeout,
                **auth,
            )
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise DriverError(
                f"The SSH host key of {o.host} changed: expected "
                f"{_fingerprint(exc.expected_key)}, got {_fingerprint(exc.key)}; "
                "refusing to connect.",
                permanent=True,
            ) from exc
        except paramiko.AuthenticationException as exc:
            client.close()
            raise DriverError(
                f"SSH login as {o.username} on {o.host}:{o.port} was refused: {exc}.",
                permanent=True,
            ) from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            client.close()
            raise _unreachable(o.host, o.port, exc) from exc
        return client

    # Push

    def push(self, bundle: Bundle) -> PushResult:
        o = self.options
        if bundle.key_pem is None:
            raise DriverError(
                f"The private key of {bundle.name} is not available; this host needs it.",
                permanent=True,
            )
        files = [
            (o.fullchain_path, bundle.fullchain_pem, CERT_MODE),
            (o.key_path, bundle.key_pem, KEY_MODE),
        ]
        details: dict = {
            "host": f"{o.username}@{o.host}:{o.port}",
            "files": [{"path": p, "bytes": len(d), "mode": oct(m)} for p, d, m in files],
            "commands": [],
            "restored": False,
        }
        client = self.connect()
        try:
            with client.open_sftp() as sftp:
                sftp.get_channel().settimeout(o.timeout)
                return self._push(client, sftp, files, details)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise DriverError(
                f"SSH session with {o.host}:{o.port} failed: {exc}.", details=details
            ) from exc
        finally:
            client.close()

    def _push(self, client, sftp, files, details) -> PushResult:
        o = self.options
        previous = []
        for path, _, _ in files:
            try:
                previous.append(_read_remote(sftp, path))
            except OSError as exc:
                raise DriverError(
                    f"Cannot read {path} on {o.host}: {exc}.", permanent=True, details=details
                ) from exc
        for item, (data, _) in zip(details["files"], previous, strict=True):
            item["existed"] = data is not None

        def fail(message: str, permanent: bool) -> DriverError:
            problems = []
            for (path, _, _), (data, mode) in zip(files, previous, strict=True):
                try:
                    _restore_remote(sftp, path, data, mode)
                except (OSError, paramiko.SSHException) as exc:
                    problems.append(f"could not restore {path}: {exc}")
            details["restored"] = not problems
            if problems:
                message += " Restoring the previous files failed too: " + "; ".join(problems)
            return DriverError(message, permanent=permanent, details=details)

        for path, data, mode in files:
            try:
                _write_remote(sftp, path, data, mode)
            except OSError as exc:
                raise fail(f"Cannot write {path} on {o.host}: {exc}.", permanent=True) from exc

        steps = [("check", o.check_command), ("reload", o.reload_command)]
        for step, command in steps:
            if not command:
                continue
            try:
                run = _run_remote(client, command, o.timeout)
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise fail(f"Running the {step} command on {o.host} failed: {exc}.", False) from exc
            details["commands"].append(run)
            if run["exit_code"] != 0:
                kept = "the previous files were put back" + (
                    " and nothing was reloaded." if step == "check" else "."
                )
                how = run.get("error") or f"exited with status {run['exit_code']}"
                output = f":\n{run['output']}" if run["output"] else "."
                raise fail(
                    f"The {step} command on {o.host} failed, {kept}\n`{command}` {how}{output}",
                    permanent=not run.get("timed_out"),
                )
        return PushResult(
            summary=f"Uploaded {o.fullchain_path} and {o.key_path} to {o.host}"
            + (", checked" if o.check_command else "")
            + ", reloaded.",
            details=details,
        )


def _read_remote(sftp: paramiko.SFTPClient, path: str) -> tuple[bytes | None, int | None]:
    try:
        mode = sftp.stat(path).st_mode & 0o7777
        with sftp.open(path, "rb") as handle:
            return handle.read(), mode
    except FileNotFoundError:
        return None, None


def _write_remote(sftp: paramiko.SFTPClient, path: str, data: bytes, mode: int) -> None:
    """Temp file beside the target, mode set before the data, then an atomic posix-rename."""
    directory, name = posixpath.split(path)
    temp = posixpath.join(directory, f".{name}.{secrets.token_hex(6)}.tmp")
    try:
        with sftp.open(temp, "wb") as handle:
            handle.chmod(mode)
            handle.write(data)
        sftp.posix_rename(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            sftp.remove(temp)
        raise


def _restore_remote(sftp, path: str, data: bytes | None, mode: int | None) -> None:
    if data is None:
        with contextlib.suppress(FileNotFoundError):
            sftp.remove(path)
        return
    _write_remote(sftp, path, data, mode or KEY_MODE)


def _run_remote(client: paramiko.SSHClient, command: str, timeout: float) -> dict:
    """Run through the remote shell (as `ssh host cmd` does); output combined and trimmed."""
    channel = client.get_transport().open_session(timeout=timeout)
    try:
        channel.set_combine_stderr(True)
        channel.settimeout(timeout)
        channel.exec_command(command)
        chunks = []
        deadline = time.monotonic() + timeout
        try:
            while chunk := channel.recv(65536):
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise TimeoutError
            exit_code = channel.recv_exit_status()
            error = None
        except TimeoutError:
            exit_code, error = None, f"did not finish within {timeout:g} s"
        record = {
            "command": command,
            "exit_code": exit_code,
            "output": tail(b"".join(chunks).decode(errors="replace")),
        }
        if error:
            record.update(error=error, timed_out=True)
        return record
    finally:
        channel.close()
