"""Helpers shared by the drivers: reading options, writing files atomically, running commands.

Nothing here ever records key material: files are described by path, size and mode, and
command output is trimmed to its tail.
"""

import contextlib
import errno
import os
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from deployments.drivers.base import DriverError

OUTPUT_LIMIT = 2000  # characters of command output kept on the record

# OSErrors that a retry of the same push cannot fix (a path or permission to correct).
_PERMANENT_ERRNOS = {
    errno.ENOENT,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
}


# Options


class OptionReader:
    """Reads a Target's JSON options field by field; every error names the field."""

    def __init__(self, options: object, kind: str):
        if options is None:
            options = {}
        if not isinstance(options, dict):
            raise DriverError(f"{kind} options must be a JSON object.", permanent=True)
        self.options = options
        self.kind = kind
        self.seen: set[str] = set()

    def _get(self, name: str, required: bool):
        self.seen.add(name)
        value = self.options.get(name)
        if value is None or value == "":
            if required:
                raise DriverError(f"{name} is required.", permanent=True)
            return None
        return value

    def string(self, name: str, *, required: bool = True, default: str | None = None):
        value = self._get(name, required)
        if value is None:
            return default
        if not isinstance(value, str):
            raise DriverError(f"{name} must be a string.", permanent=True)
        return value.strip()

    def path(self, name: str, *, required: bool = True) -> str | None:
        value = self.string(name, required=required)
        if value is None:
            return None
        if not value.startswith("/"):
            raise DriverError(f"{name} must be an absolute path (got {value!r}).", permanent=True)
        if value.endswith("/") or "\x00" in value:
            raise DriverError(f"{name} must name a file, not a directory.", permanent=True)
        return value

    def command(self, name: str, *, required: bool = True) -> list[str] | None:
        value = self._get(name, required)
        if value is None:
            return None
        if isinstance(value, str):
            try:
                args = shlex.split(value)
            except ValueError as exc:
                raise DriverError(
                    f"{name} cannot be split into arguments: {exc}.", permanent=True
                ) from exc
        elif isinstance(value, list) and all(isinstance(a, str) for a in value):
            args = list(value)
        else:
            raise DriverError(f"{name} must be a list of arguments or a string.", permanent=True)
        if not args or not args[0]:
            if required:
                raise DriverError(f"{name} is required.", permanent=True)
            return None
        return args

    def command_line(self, name: str, *, required: bool = True) -> str | None:
        """A command for a remote shell: a string as given, a list of arguments quoted."""
        value = self._get(name, required)
        if value is None:
            return None
        if isinstance(value, list) and value and all(isinstance(a, str) for a in value):
            return shlex.join(value)
        if isinstance(value, str) and value.strip():
            return value.strip()
        raise DriverError(f"{name} must be a list of arguments or a string.", permanent=True)

    def boolean(self, name: str, *, default: bool) -> bool:
        value = self._get(name, False)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise DriverError(f"{name} must be true or false.", permanent=True)
        return value

    def number(self, name: str, *, default: float, low: float, high: float) -> float:
        value = self._get(name, False)
        if value is None:
            return default
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            raise DriverError(f"{name} must be a number from {low:g} to {high:g}.", permanent=True)
        return value

    def integer(self, name: str, *, default: int, low: int, high: int) -> int:
        value = self._get(name, False)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise DriverError(
                f"{name} must be a whole number from {low} to {high}.", permanent=True
            )
        return value

    def finish(self) -> None:
        """Refuse fields this kind does not know (a typo would otherwise be silently ignored)."""
        unknown = sorted(set(self.options) - self.seen)
        if unknown:
            raise DriverError(
                f"Unknown option {unknown[0]!r} for {self.kind} "
                f"(expected: {', '.join(sorted(self.seen))}).",
                permanent=True,
            )


def command_text(args: list[str]) -> str:
    return shlex.join(args)


def tail(text: str, limit: int = OUTPUT_LIMIT) -> str:
    """The last `limit` characters: errors are at the end of a command's output."""
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-limit:]


# Files


@dataclass(frozen=True)
class Previous:
    """A file as it was before a push: its bytes and mode, or data None if it did not exist."""

    path: Path
    data: bytes | None
    mode: int | None


def read_previous(path: str | Path) -> Previous:
    path = Path(path)
    try:
        return Previous(path, path.read_bytes(), path.stat().st_mode & 0o7777)
    except FileNotFoundError:
        return Previous(path, None, None)
    except OSError as exc:
        raise file_error(f"Cannot read {path}", exc) from exc


def atomic_write(path: str | Path, data: bytes, mode: int) -> None:
    """Temp file beside `path` (same filesystem), fsync, rename over it: readers never see half."""
    path = Path(path)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)  # before any byte of a key is written
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def restore(previous: Previous) -> None:
    """Put a file back byte for byte, or remove it if there was none before."""
    if previous.data is None:
        with contextlib.suppress(FileNotFoundError):
            previous.path.unlink()
        return
    atomic_write(previous.path, previous.data, previous.mode or 0o600)


def restore_all(previous: list[Previous]) -> list[str]:
    """Restore every file; return the problems (a failed restore must not hide the first error)."""
    problems = []
    for item in previous:
        try:
            restore(item)
        except OSError as exc:
            problems.append(f"could not restore {item.path}: {exc.strerror or exc}")
    return problems


def file_error(what: str, exc: OSError) -> DriverError:
    return DriverError(f"{what}: {exc.strerror or exc}.", permanent=exc.errno in _PERMANENT_ERRNOS)


# Commands


@dataclass
class CommandRun:
    """One command as run: arguments, exit code (None if it did not finish) and output tail."""

    args: list[str]
    exit_code: int | None
    output: str
    error: str | None = None
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.error is None

    def as_dict(self) -> dict:
        return {
            "command": command_text(self.args),
            "exit_code": self.exit_code,
            "output": self.output,
            **({"error": self.error} if self.error else {}),
        }

    def failure(self) -> str:
        """A sentence saying how the command failed, with its output's tail."""
        how = self.error or f"exited with status {self.exit_code}"
        text = f"`{command_text(self.args)}` {how}"
        return f"{text}:\n{self.output}" if self.output else f"{text}."


def run_command(args: list[str], timeout: float) -> CommandRun:
    """Run without a shell, stdout and stderr together, killed after `timeout` seconds."""
    try:
        done = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        output = (exc.output or b"").decode(errors="replace")
        return CommandRun(
            args, None, tail(output), f"did not finish within {timeout:g} s", timed_out=True
        )
    except OSError as exc:
        return CommandRun(args, None, "", f"could not be started ({exc.strerror or exc})")
    return CommandRun(args, done.returncode, tail(done.stdout.decode(errors="replace")))
