"""HAProxy's runtime API: replace a loaded certificate in memory (`set`/`commit ssl cert`).

No restart and no reload: the next handshake gets the new certificate. The runtime change is
memory-only, so `write_file` also writes the combined PEM at crt_path for the next restart.
"""

import contextlib
import socket
from dataclasses import dataclass

from deployments.drivers._files import (
    OptionReader,
    atomic_write,
    file_error,
    read_previous,
    restore_all,
    tail,
)
from deployments.drivers.base import Bundle, Driver, DriverError, PushResult

PEM_MODE = 0o600  # the combined file holds the key


@dataclass(frozen=True)
class HAProxyOptions:
    crt_path: str
    socket: str | None = None
    address: tuple[str, int] | None = None
    write_file: bool = False
    timeout: float = 10.0


def _address(value: str | None) -> tuple[str, int] | None:
    if value is None:
        return None
    host, _, port = value.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DriverError("address must be host:port (for example 127.0.0.1:9999).", permanent=True)
    return host, int(port)


class HAProxyDriver(Driver):
    """Sends leaf + chain + key to the admin socket under the exact name used by `crt`."""

    kind = "haproxy"
    label = "HAProxy runtime API"
    Options = HAProxyOptions

    @classmethod
    def parse_options(cls, options: dict) -> HAProxyOptions:
        reader = OptionReader(options, cls.kind)
        parsed = HAProxyOptions(
            socket=reader.path("socket", required=False),
            address=_address(reader.string("address", required=False)),
            crt_path=reader.string("crt_path"),
            write_file=reader.boolean("write_file", default=False),
            timeout=reader.number("timeout", default=10.0, low=1, high=120),
        )
        reader.finish()
        if (parsed.socket is None) == (parsed.address is None):
            raise DriverError(
                "Give either socket (a unix socket path) or address (host:port), not both.",
                permanent=True,
            )
        if parsed.write_file and not parsed.crt_path.startswith("/"):
            raise DriverError(
                "crt_path must be an absolute path when write_file is true.", permanent=True
            )
        if any(c.isspace() for c in parsed.crt_path):
            raise DriverError("crt_path must not contain spaces.", permanent=True)
        return parsed

    @property
    def endpoint(self) -> str:
        o = self.options
        return f"unix:{o.socket}" if o.socket else f"{o.address[0]}:{o.address[1]}"

    def describe(self) -> str:
        on_disk = " (also written on disk)" if self.options.write_file else ""
        return f"{self.label} at {self.endpoint}: certificate {self.options.crt_path}{on_disk}"

    def runtime_api(self, command: str, payload: str | None = None) -> str:
        """One command per connection, as the API expects; a payload follows `<<`."""
        o = self.options
        data = f"{command} <<\n{payload}\n\n" if payload else f"{command}\n"
        family = socket.AF_UNIX if o.socket else socket.AF_INET
        try:
            if o.socket:
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.settimeout(o.timeout)
                sock.connect(o.socket)
            else:
                sock = socket.create_connection(o.address, timeout=o.timeout)
            with sock:
                sock.sendall(data.encode())
                chunks = []
                while chunk := sock.recv(65536):
                    chunks.append(chunk)
        except OSError as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
            raise DriverError(
                f"Cannot reach the HAProxy runtime API at {self.endpoint}: {reason}.",
                permanent=False,
            ) from exc
        return b"".join(chunks).decode(errors="replace").strip()

    def push(self, bundle: Bundle) -> PushResult:
        o = self.options
        if bundle.key_pem is None:
            raise DriverError(
                f"The private key of {bundle.name} is not available; HAProxy needs it.",
                permanent=True,
            )
        # An empty line ends the payload, so PEM blocks must follow each other without one.
        combined = b"\n".join(
            line for line in bundle.combined_pem.splitlines() if line.strip()
        ).decode("ascii", errors="replace")
        details: dict = {"endpoint": self.endpoint, "crt_path": o.crt_path, "commands": []}

        previous = []
        if o.write_file:
            previous = [read_previous(o.crt_path)]
            try:
                atomic_write(o.crt_path, combined.encode() + b"\n", PEM_MODE)
            except OSError as exc:
                raise file_error(f"Cannot write {o.crt_path}", exc) from exc
            details["file"] = {"path": o.crt_path, "mode": oct(PEM_MODE), "restored": False}

        def command(text: str, payload: str | None = None) -> str:
            answer = self.runtime_api(text, payload)
            details["commands"].append({"command": text, "answer": tail(answer, 500)})
            return answer

        def abort() -> None:
            with contextlib.suppress(DriverError):
                command(f"abort ssl cert {o.crt_path}")

        def fail(message: str, permanent: bool) -> DriverError:
            if previous:
                problems = restore_all(previous)
                details["file"]["restored"] = not problems
                if problems:
                    message += " " + "; ".join(problems)
            return DriverError(message, permanent=permanent, details=details)

        try:
            answer = command(f"set ssl cert {o.crt_path}", combined)
            if "Transaction created" not in answer and "Transaction updated" not in answer:
                abort()
                raise fail(f"HAProxy refused the certificate: {answer}", permanent=True)
            answer = command(f"commit ssl cert {o.crt_path}")
            if "Success!" not in answer:
                abort()
                raise fail(f"HAProxy refused the certificate: {answer}", permanent=True)
        except DriverError as exc:
            if exc.details is details:
                raise
            raise fail(exc.message, exc.permanent) from exc
        return PushResult(
            summary=f"HAProxy now serves the new certificate as {o.crt_path} (no restart)"
            + (", file written." if o.write_file else "."),
            details=details,
        )
