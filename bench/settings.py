"""Benchmark settings: the product's settings on a throwaway database of their own.

BENCH_DATABASE_URL picks PostgreSQL (e.g. postgres://postgres@127.0.0.1:5432/certconsole_bench);
by default a SQLite file in var/bench/.
"""

import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet

_VAR = Path(__file__).resolve().parent.parent / "var" / "bench"
_VAR.mkdir(parents=True, exist_ok=True)
os.environ.setdefault("SECRET_KEY", "bench-" + secrets.token_urlsafe(40))
os.environ.setdefault("CERTCONSOLE_KEYRING", Fernet.generate_key().decode())
os.environ["DEBUG"] = "false"
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("ALLOWED_HOSTS", "localhost,127.0.0.1,testserver")
os.environ["DATABASE_URL"] = os.environ.get(
    "BENCH_DATABASE_URL", f"sqlite:///{_VAR / 'bench.sqlite3'}"
)

from certconsole.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
