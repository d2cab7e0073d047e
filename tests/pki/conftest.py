"""Shared certificate fixtures for the PKI tests (no Django, no database)."""

import pytest

from tests.pki.factory import Chain, make_chain


@pytest.fixture(scope="session")
def ec_chain() -> Chain:
    """An all-EC P-256 root → intermediate → leaf."""
    return make_chain()


@pytest.fixture(scope="session")
def rsa_chain() -> Chain:
    """An all-RSA-2048 root → intermediate → leaf."""
    return make_chain(key_kind="rsa-2048")
