"""Secure by default: production settings pass `check --deploy`, secrets are required."""

import os
import re
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]


# The test run's own relaxations (tests/settings.py) must not leak into these processes.
TEST_ONLY = {
    "SECRET_KEY",
    "CERTCONSOLE_KEYRING",
    "SECURE_SSL_REDIRECT",
    "SECURE_COOKIES",
    "DEBUG",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
}


def clean_env(**env):
    base = {k: v for k, v in os.environ.items() if k not in TEST_ONLY}
    base.update(env, DJANGO_SETTINGS_MODULE="certconsole.settings")
    return base


def manage(*args, env):
    base = clean_env(**env, DEBUG="false")
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=base, capture_output=True, text=True
    )


PRODUCTION = {
    "SECRET_KEY": "p" * 20 + "Xq9#kLm2$vB7@nR4!wT6&yU8*zA1^cE3",
    "CERTCONSOLE_KEYRING": Fernet.generate_key().decode(),
    "ALLOWED_HOSTS": "certs.example.com",
    "DATABASE_URL": "sqlite:////tmp/certconsole-deploy-check.sqlite3",
}


def test_check_deploy_reports_no_warnings_with_production_settings():
    result = manage("check", "--deploy", env=PRODUCTION)
    warnings = set(re.findall(r"\(security\.W\d+\)", result.stdout + result.stderr))
    # HSTS preload commits the operator's whole domain to browsers' lists: their choice
    # (SECURE_HSTS_PRELOAD=true), not something the project may decide for them.
    assert warnings <= {"(security.W021)"}, result.stdout + result.stderr
    assert result.returncode == 0


def test_debug_off_without_secret_key_fails_loudly():
    env = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY is required when DEBUG is off" in result.stderr


def test_debug_off_without_keyring_fails_loudly():
    env = {k: v for k, v in PRODUCTION.items() if k != "CERTCONSOLE_KEYRING"}
    result = manage("check", env=env)
    assert "CERTCONSOLE_KEYRING is required when DEBUG is off" in result.stderr


def test_secrets_can_come_from_files(tmp_path):
    key_file = tmp_path / "secret"
    key_file.write_text(PRODUCTION["SECRET_KEY"] + "\n")
    env = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
    result = manage("check", env={**env, "SECRET_KEY_FILE": str(key_file)})
    assert result.returncode == 0, result.stderr


def test_development_secrets_are_generated_once_with_mode_0600(tmp_path):
    base = clean_env(
        DEBUG="true", CERTCONSOLE_VAR_DIR=str(tmp_path), DATABASE_URL=PRODUCTION["DATABASE_URL"]
    )
    for _ in range(2):
        subprocess.run(
            [sys.executable, "manage.py", "check"],
            cwd=ROOT,
            env=base,
            check=True,
            capture_output=True,
        )
    keyring = tmp_path / "certconsole_keyring.txt"
    assert oct(keyring.stat().st_mode & 0o777) == "0o600"
    Fernet(keyring.read_text().strip().encode())  # a valid Fernet key
    assert (tmp_path / "secret_key.txt").exists()
