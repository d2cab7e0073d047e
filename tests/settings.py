"""Test settings: the product's settings, with the environment a test run needs.

Only environment defaults are set here; everything else comes from
certconsole.settings, so the tests run the configuration users run.
"""

import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet

_VAR = Path(__file__).resolve().parent.parent / "var"

os.environ.setdefault("SECRET_KEY", "tests-" + secrets.token_urlsafe(40))
os.environ.setdefault("CERTCONSOLE_KEYRING", Fernet.generate_key().decode())
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("SECURE_COOKIES", "false")
os.environ.setdefault("ALLOWED_HOSTS", "localhost,127.0.0.1,testserver")
os.environ.setdefault("CERTCONSOLE_BASE_URL", "http://testserver")
# Personas sign in with a password only; the MFA tests (tests/access/test_mfa.py) turn the
# default policy (KeyCustodian and ProjectAdmin need a second factor) back on where they test it.
os.environ.setdefault("MFA_DEFAULT_ROLES", "")

from certconsole.settings import *  # noqa: E402,F403

# Fast hashing for test users; production keeps Django's default.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
# A test database per process, so two runs at once (two developers' shells) never collide;
# pytest-xdist workers add their own suffix to it.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    DATABASES["default"]["TEST"]["NAME"] = str(_VAR / f"test-certconsole-{os.getpid()}.sqlite3")  # noqa: F405
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405  (whitenoise warns otherwise)

# View tests configure nginx_local targets whose commands never run ("true").
DEPLOY_LOCAL_PROGRAMS = ["nginx", "true"]
