"""`make run`: make sure Redis is reachable, migrate, create the first admin, start everything.

Web (gunicorn), an RQ worker and the RQ cron scheduler run together under honcho
(see Procfile); Ctrl-C stops all of them, and the Redis this script started.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def ensure_redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary:
        return binary
    if os.geteuid() != 0:
        sys.exit(
            "Redis is not reachable and redis-server is missing: run `sudo apt-get install "
            "redis-server` or set REDIS_URL to a running Redis."
        )
    print("Installing Debian's redis-server …")
    subprocess.run(["apt-get", "install", "-y", "-q", "redis-server"], check=True)
    return shutil.which("redis-server") or sys.exit("redis-server still missing after install.")


def start_local_redis() -> tuple[subprocess.Popen, str]:
    directory = VAR / "redis"
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    args = [
        ensure_redis_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(directory),
        "--save",
        "60 1",
        "--appendonly",
        "no",
        "--logfile",
        str(directory / "redis.log"),
    ]
    proc = subprocess.Popen(args, start_new_session=True)
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        if redis_answers(url):
            print(f"Started a local Redis at {url} (files in var/redis/).")
            return proc, url
        time.sleep(0.1)
    proc.terminate()
    sys.exit(f"The local redis-server did not answer; see {directory / 'redis.log'}.")


def manage(*args: str) -> None:
    subprocess.run([PYTHON, str(ROOT / "manage.py"), *args], check=True)


def main() -> None:
    os.environ.setdefault("DEBUG", "true")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    redis_proc = None
    if not redis_answers(redis_url):
        redis_proc, redis_url = start_local_redis()
    os.environ["REDIS_URL"] = redis_url
    try:
        manage("migrate", "--no-input", "-v", "0")
        if os.environ["DEBUG"].lower() not in ("1", "true", "yes", "on"):
            manage("collectstatic", "--no-input", "-v", "0")
        manage("ensure_admin")
        port = int(os.environ.get("PORT", "8000"))
        if port_open("127.0.0.1", port):
            port = free_port()
        os.environ["CERTCONSOLE_PORT"] = str(port)
        host = urlparse(f"http://127.0.0.1:{port}")
        print(f"\n  CertConsole is starting at http://{host.netloc}/  (Ctrl-C stops everything)\n")
        honcho = str(Path(PYTHON).parent / "honcho")
        subprocess.run([honcho, "-d", str(ROOT), "-f", str(ROOT / "Procfile"), "start"])
    except KeyboardInterrupt:
        pass
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(timeout=10)


if __name__ == "__main__":
    main()
