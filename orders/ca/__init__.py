"""The private CA core: framework-free (no Django), dataclasses and bytes in and out.

authority (CAs and issuing), profiles (what may be issued), crl (revocation lists) and csr
(building and reading signing requests).
"""

from .authority import (
    CA_KEY_KINDS,
    CaMaterial,
    CaSpec,
    accept_signed_intermediate,
    create_intermediate,
    create_root,
    intermediate_csr,
    issue,
)
from .crl import RevokedEntry, build_crl, crl_der, crl_pem
from .csr import CsrInfo, build_csr, read_csr
from .profiles import CaError, IssueRequest, Profile, check

__all__ = [
    "CA_KEY_KINDS",
    "CaError",
    "CaMaterial",
    "CaSpec",
    "CsrInfo",
    "IssueRequest",
    "Profile",
    "RevokedEntry",
    "accept_signed_intermediate",
    "build_crl",
    "build_csr",
    "check",
    "create_intermediate",
    "create_root",
    "crl_der",
    "crl_pem",
    "intermediate_csr",
    "issue",
    "read_csr",
]
