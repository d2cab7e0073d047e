"""The only code that speaks ACME: thin, framework-free steps over the `acme` library."""

from .client import (
    AccountInfo,
    AcmeClient,
    AcmeConfig,
    AuthzSnapshot,
    CertificateDownload,
    ChallengeSnapshot,
    OrderSnapshot,
    RenewalWindow,
    directory_meta,
    generate_account_key,
    poll_until,
    register_account,
)
from .errors import AcmeError

__all__ = [
    "AccountInfo",
    "AcmeClient",
    "AcmeConfig",
    "AcmeError",
    "AuthzSnapshot",
    "CertificateDownload",
    "ChallengeSnapshot",
    "OrderSnapshot",
    "RenewalWindow",
    "directory_meta",
    "generate_account_key",
    "poll_until",
    "register_account",
]
