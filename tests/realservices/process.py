"""Start, watch and stop the processes behind the real test servers."""

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Self

from . import ServiceError, ServiceUnavailable

# Daemons live in sbin, which is not on PATH for every user.
_EXTRA_PATH = ("/usr/sbin", "/sbin", "/usr/local/sbin")


class Service:
    """Base of the subprocess servers: a context manager around start() and stop().

    Subclasses implement `_start()` and an idempotent `stop()` that copes with a half-started
    server, so a failed start never leaves a process behind.
    """

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def which(binary: str, package: str) -> str:
    """Absolute path of `binary`, or ServiceUnavailable naming the Debian package to install."""
    path = os.environ.get("PATH", os.defpath) + os.pathsep + os.pathsep.join(_EXTRA_PATH)
    found = shutil.which(binary, path=path)
    if found is None:
        raise ServiceUnavailable(f"{binary} is not installed (apt-get install {package})")
    return found


def spawn(
    args: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Run `args` in a new session (its own process group), stdout and stderr to `log_path`."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
            cwd=cwd,
            start_new_session=True,
        )


def log_tail(path: Path | None, lines: int = 20) -> str:
    if path is None:
        return ""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def wait_ready(
    check: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    proc: subprocess.Popen[bytes] | None = None,
    pid: Callable[[], int | None] | None = None,
    log_path: Path | None = None,
) -> None:
    """Poll `check` until it is true; ServiceError if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise ServiceError(
                f"{what} exited with status {proc.returncode} while starting:\n{log_tail(log_path)}"
            )
        daemon = pid() if pid is not None else None
        if pid is not None and daemon is not None and not pid_alive(daemon):
            raise ServiceError(f"{what} (pid {daemon}) died while starting:\n{log_tail(log_path)}")
        if check():
            return
        if time.monotonic() >= deadline:
            raise ServiceError(f"{what} not ready after {timeout:g} s:\n{log_tail(log_path)}")
        time.sleep(0.02)


def pid_alive(pid: int) -> bool:
    """True while `pid` runs. A zombie counts as gone: PID 1 in a container may never reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


def children(pid: int) -> set[int]:
    """PIDs of the live child processes of `pid` (nginx workers of a master, for instance)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] not in ("Z", "X"):
            found.add(int(entry.name))
    return found


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop_process(
    proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, timeout: float = 5.0
) -> None:
    """Signal the process group of a `spawn`ed process, wait, then SIGKILL what is left."""
    if proc is None:
        return
    if proc.poll() is None:
        _killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
    # Workers or helpers of a dead leader keep ports open otherwise.
    _killpg(proc.pid, signal.SIGKILL)


def stop_pid(pid: int | None, sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
    """Stop a self-daemonized server known by its pid file (it leads its own process group)."""
    if pid is None or not pid_alive(pid):
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if pid_alive(pid):
        _killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            raise ServiceError(f"pid {pid} survived SIGKILL for {timeout:g} s")
        time.sleep(0.02)
