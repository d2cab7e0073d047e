"""CertConsole settings, read from the environment (see .env.example).

Secure by default: DEBUG is off unless set, and then SECRET_KEY and
CERTCONSOLE_KEYRING must be given explicitly. In development (DEBUG on) both
are generated once into var/ with mode 0600 so `make run` works out of the box.
"""

import ipaddress
from pathlib import Path

import environ
from csp.constants import NONCE, NONE, SELF

from certconsole.devsecrets import dev_secret

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("CERTCONSOLE_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
env.smart_cast = False
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)


def _secret(name: str, generator: str) -> str:
    """A secret from NAME or NAME_FILE; generated into var/ only in development."""
    file_path = env.str(f"{name}_FILE", default="")
    if file_path:
        return Path(file_path).read_text().strip()
    value = env.str(name, default="")
    if value:
        return value
    if DEBUG:
        return dev_secret(VAR_DIR / f"{name.lower()}.txt", generator)
    raise environ.ImproperlyConfigured(
        f"{name} is required when DEBUG is off (set {name} or {name}_FILE; see .env.example)."
    )


SECRET_KEY = _secret("SECRET_KEY", "django")
CERTCONSOLE_KEYRING = [k.strip() for k in _secret("CERTCONSOLE_KEYRING", "fernet").split(",")]

ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
CERTCONSOLE_BASE_URL = env.str("CERTCONSOLE_BASE_URL", default="")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "django_rq",
    "csp",
    "axes",
    "certconsole.access",
    "certconsole.audit",
    "inventory",
    "orders",
    "deployments",
]

MIDDLEWARE = [
    # First: the CA fetches HTTP-01 tokens over plain HTTP with the ordered domain as Host.
    "orders.http01.AcmeChallengeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "certconsole.audit.middleware.AuditContextMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "certconsole.urls"
WSGI_APPLICATION = "certconsole.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
                "certconsole.context_processors.csp_nonce",
                "certconsole.access.context_processors.projects",
            ],
        },
    },
]

# Database: PostgreSQL in production, an embedded SQLite file by default.
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'certconsole.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions take the write lock up front, so concurrent writers
    # queue on the busy timeout instead of failing on a lock upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-certconsole.sqlite3")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "certconsole.access.backends.ProjectRoleBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": env.int("PASSWORD_MIN_LENGTH", default=12)},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

# Failed-login lockout (django-axes): lock a username+IP pair after N failures.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=0.25)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ADMIN = False
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_IPWARE_PROXY_COUNT = env.int("PROXY_COUNT", default=0) or None

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# Email: console backend unless EMAIL_URL says otherwise (smtp://, submission://).
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="certconsole@localhost")

# Jobs: one Redis, five queues.
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
RQ_QUEUE_NAMES = ("default", "acme", "deploy", "notify", "scan")
RQ_QUEUES = {name: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 600} for name in RQ_QUEUE_NAMES}
RQ_SHOW_ADMIN_LINK = False

# Security headers. HTTPS settings follow SECURE_SSL_REDIRECT so a plain-HTTP
# development server still works; production runs behind TLS.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("TRUST_X_FORWARDED_PROTO", False) else None
)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
CSRF_FAILURE_VIEW = "certconsole.errors.csrf_failure"
SILENCED_SYSTEM_CHECKS = env.list("SILENCED_SYSTEM_CHECKS", default=[])

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [NONE],
        "object-src": [NONE],
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"axes": {"level": "WARNING"}},
}

# Limits and policies of the product itself.
CERTCONSOLE_SENSITIVE_REAUTH_SECONDS = 300
CERTCONSOLE_IMPORT_MAX_BYTES = env.int("CERTCONSOLE_IMPORT_MAX_BYTES", default=5 * 1024 * 1024)
CERTCONSOLE_IMPORT_MAX_CERTIFICATES = env.int("CERTCONSOLE_IMPORT_MAX_CERTIFICATES", default=500)
# Pasted text counts against this; files beyond the in-memory size go to a temp file.
DATA_UPLOAD_MAX_MEMORY_SIZE = CERTCONSOLE_IMPORT_MAX_BYTES + 1024 * 1024

# Deployments. nginx_local targets run their test/reload commands on this host: only these
# programs (names or absolute paths) may be used, so managing targets never grants a shell.
DEPLOY_LOCAL_PROGRAMS = env.list("DEPLOY_LOCAL_PROGRAMS", default=["nginx"])
DEPLOY_VERIFY_TIMEOUT = env.float("DEPLOY_VERIFY_TIMEOUT", default=15.0)
DEPLOY_PROBE_TIMEOUT = env.float("DEPLOY_PROBE_TIMEOUT", default=5.0)
DEPLOY_STALE_AFTER = env.int("DEPLOY_STALE_AFTER", default=600)
# Webhook targets get a single-use URL to fetch their bundle; it lives this many seconds.
DEPLOY_BUNDLE_URL_SECONDS = env.int("DEPLOY_BUNDLE_URL_SECONDS", default=600)
ENDPOINT_CHECK_CONCURRENCY = env.int("ENDPOINT_CHECK_CONCURRENCY", default=32)
ENDPOINT_CHECK_TIMEOUT = env.float("ENDPOINT_CHECK_TIMEOUT", default=5.0)
ENDPOINT_CHECK_RETENTION_DAYS = env.int("ENDPOINT_CHECK_RETENTION_DAYS", default=90)

# ACME: polling the CA (seconds; backoff multiplies up to the maximum, Retry-After wins),
# retries of transient CA errors, and where "Check DNS" asks (default: the zone's servers).
ACME_POLL_INTERVAL = env.float("ACME_POLL_INTERVAL", default=1.0)
ACME_POLL_BACKOFF = env.float("ACME_POLL_BACKOFF", default=1.5)
ACME_POLL_MAX_INTERVAL = env.float("ACME_POLL_MAX_INTERVAL", default=10.0)
ACME_RETRY_BASE = env.int("ACME_RETRY_BASE", default=30)
ACME_RETRY_MAX = env.int("ACME_RETRY_MAX", default=3600)
ACME_MAX_ATTEMPTS = env.int("ACME_MAX_ATTEMPTS", default=8)
ACME_RENEWAL_RETRY_HOURS = env.int("ACME_RENEWAL_RETRY_HOURS", default=6)

# ---------------------------------------------------------------------------
# Sign-in and MFA (issue 9): second factors, single sign-on, LDAP, session policy.
# ---------------------------------------------------------------------------
INSTALLED_APPS += ["django_otp"]
# OTPMiddleware right after authentication (it wraps request.user); the session
# policy after messages (it tells why a session ended), before any view runs.
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
    "django_otp.middleware.OTPMiddleware",
)
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.contrib.messages.middleware.MessageMiddleware") + 1,
    "certconsole.access.sessions.SessionPolicyMiddleware",
)
TEMPLATES[0]["OPTIONS"]["context_processors"].append("certconsole.access.mfa.context")

# Roles that need a verified second factor in projects without their own policy.
CERTCONSOLE_MFA_DEFAULT_ROLES = env.list(
    "MFA_DEFAULT_ROLES", default=["keycustodian", "projectadmin"]
)
CERTCONSOLE_MFA_ISSUER = env.str("MFA_ISSUER", default="CertConsole")
# A second factor proven at most this long ago counts as fresh for key export and role changes.
CERTCONSOLE_SECOND_FACTOR_FRESH_SECONDS = 300

# Local (password) accounts; when off, only superusers may still use a password (break glass).
LOCAL_LOGIN_ENABLED = env.bool("LOCAL_LOGIN_ENABLED", default=True)

# Session policy: end a session after this much inactivity, and at the latest this long after
# sign-in whatever happens.
SESSION_IDLE_TIMEOUT = env.int("SESSION_IDLE_TIMEOUT", default=3600)
SESSION_ABSOLUTE_LIFETIME = env.int("SESSION_ABSOLUTE_LIFETIME", default=SESSION_COOKIE_AGE)
if SESSION_IDLE_TIMEOUT <= 0 or SESSION_ABSOLUTE_LIFETIME <= 0:
    raise environ.ImproperlyConfigured(
        "SESSION_IDLE_TIMEOUT and SESSION_ABSOLUTE_LIFETIME are seconds and must be positive."
    )
SESSION_COOKIE_AGE = max(SESSION_COOKIE_AGE, SESSION_ABSOLUTE_LIFETIME)

# OpenID Connect (mozilla-django-oidc): on when OIDC_ISSUER and OIDC_RP_CLIENT_ID are set.
# Endpoints default to the issuer's usual paths; set them when the provider differs.
OIDC_ISSUER = env.str("OIDC_ISSUER", default="").rstrip("/")
OIDC_RP_CLIENT_ID = env.str("OIDC_RP_CLIENT_ID", default="")


def _optional_secret(name: str) -> str:
    """A secret from NAME_FILE or NAME, empty when neither is set."""
    file_path = env.str(f"{name}_FILE", default="")
    return Path(file_path).read_text().strip() if file_path else env.str(name, default="")


OIDC_RP_CLIENT_SECRET = _optional_secret("OIDC_RP_CLIENT_SECRET")
OIDC_ENABLED = bool(OIDC_ISSUER and OIDC_RP_CLIENT_ID)
if OIDC_ENABLED and not OIDC_RP_CLIENT_SECRET:
    raise environ.ImproperlyConfigured("OIDC_RP_CLIENT_SECRET (or _FILE) is required with OIDC.")
OIDC_OP_AUTHORIZATION_ENDPOINT = env.str(
    "OIDC_OP_AUTHORIZATION_ENDPOINT", default=f"{OIDC_ISSUER}/authorize"
)
OIDC_OP_TOKEN_ENDPOINT = env.str("OIDC_OP_TOKEN_ENDPOINT", default=f"{OIDC_ISSUER}/token")
OIDC_OP_USER_ENDPOINT = env.str("OIDC_OP_USER_ENDPOINT", default=f"{OIDC_ISSUER}/userinfo")
OIDC_OP_JWKS_ENDPOINT = env.str("OIDC_OP_JWKS_ENDPOINT", default=f"{OIDC_ISSUER}/jwks")
OIDC_RP_SIGN_ALGO = env.str("OIDC_RP_SIGN_ALGO", default="RS256")
OIDC_RP_SCOPES = env.str("OIDC_RP_SCOPES", default="openid email profile groups")
OIDC_GROUPS_CLAIM = env.str("OIDC_GROUPS_CLAIM", default="groups")
OIDC_USERNAME_CLAIM = env.str("OIDC_USERNAME_CLAIM", default="preferred_username")
OIDC_USE_PKCE = True
OIDC_TIMEOUT = env.int("OIDC_TIMEOUT", default=10)
OIDC_AUTHENTICATION_CALLBACK_URL = "oidc-callback"
LOGIN_REDIRECT_URL_FAILURE = "login"
if OIDC_ENABLED:
    AUTHENTICATION_BACKENDS += ["certconsole.access.sso.OIDCBackend"]

# LDAP / Active Directory (django-auth-ldap): on when AUTH_LDAP_SERVER_URI is set.
AUTH_LDAP_SERVER_URI = env.str("AUTH_LDAP_SERVER_URI", default="")
LDAP_ENABLED = bool(AUTH_LDAP_SERVER_URI)
if LDAP_ENABLED:
    from certconsole.access.ldap_config import ldap_settings

    vars().update(ldap_settings(env, _optional_secret))
    AUTHENTICATION_BACKENDS += ["certconsole.access.ldap_auth.LDAPBackend"]

# REST API, bundle fetch and Prometheus metrics (issue 8): see README "API".
INSTALLED_APPS += ["rest_framework", "drf_spectacular", "api"]
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["api.permissions.TokenScope"],
    "DEFAULT_THROTTLE_CLASSES": ["api.permissions.TokenRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CertConsole API",
    "DESCRIPTION": "Certificates, orders, deployments and audit under the console's permissions.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "CertificateSourceEnum": "inventory.models.Source",
        "AuditSourceEnum": "certconsole.audit.models.AuditEvent.Source",
        "OrderStateEnum": "orders.models.Order.State",
        "DeploymentStateEnum": "deployments.models.Deployment.State",
        "StepStateEnum": "deployments.models.DeploymentStep.State",
        "OrderKeyTypeEnum": "orders.models.KEY_TYPES",
        "CertificateKeyTypeEnum": "inventory.filters.KEY_TYPES",
        "OrderKindEnum": "orders.models.Order.Kind",
        "TargetKindEnum": "deployments.models.Target.Kind",
    },
}
# /metrics: a client in these networks, or a bearer token (METRICS_TOKEN or an API token
# with the metrics flag); at most METRICS_MAX_CERTIFICATES expiry series per project.
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.1/32", "::1/128"])
METRICS_TOKEN = _optional_secret("METRICS_TOKEN")
METRICS_MAX_CERTIFICATES = env.int("METRICS_MAX_CERTIFICATES", default=50)
MIDDLEWARE.insert(0, "api.metrics.LatencyMiddleware")
for _network in METRICS_ALLOWED_NETWORKS:
    ipaddress.ip_network(_network)  # a typo fails at start, not at the first scrape
