"""The AUTH_LDAP_* settings from the environment; imported by settings.py, so no models here."""

import ldap
from django_auth_ldap.config import (
    ActiveDirectoryGroupType,
    GroupOfNamesType,
    GroupOfUniqueNamesType,
    LDAPSearch,
    PosixGroupType,
)

GROUP_TYPES = {
    "groupOfNames": GroupOfNamesType,
    "groupOfUniqueNames": GroupOfUniqueNamesType,
    "posixGroup": PosixGroupType,
    "activeDirectory": ActiveDirectoryGroupType,
}


def ldap_settings(env, secret) -> dict:
    """The AUTH_LDAP_* settings from the environment (see .env.example)."""
    group_type = env.str("AUTH_LDAP_GROUP_TYPE", default="groupOfNames")
    if group_type not in GROUP_TYPES:
        raise ValueError(f"AUTH_LDAP_GROUP_TYPE must be one of {', '.join(GROUP_TYPES)}.")
    timeout = env.int("AUTH_LDAP_TIMEOUT", default=5)
    return {
        "AUTH_LDAP_BIND_DN": env.str("AUTH_LDAP_BIND_DN", default=""),
        "AUTH_LDAP_BIND_PASSWORD": secret("AUTH_LDAP_BIND_PASSWORD"),
        "AUTH_LDAP_USER_SEARCH": LDAPSearch(
            env.str("AUTH_LDAP_USER_BASE"),
            ldap.SCOPE_SUBTREE,
            env.str("AUTH_LDAP_USER_FILTER", default="(uid=%(user)s)"),
        ),
        "AUTH_LDAP_GROUP_SEARCH": LDAPSearch(
            env.str("AUTH_LDAP_GROUP_BASE", default=env.str("AUTH_LDAP_USER_BASE")),
            ldap.SCOPE_SUBTREE,
            env.str("AUTH_LDAP_GROUP_FILTER", default="(objectClass=*)"),
        ),
        "AUTH_LDAP_GROUP_TYPE": GROUP_TYPES[group_type](),
        "AUTH_LDAP_START_TLS": env.bool("AUTH_LDAP_START_TLS", default=False),
        "AUTH_LDAP_USER_ATTR_MAP": {"first_name": "givenName", "last_name": "sn", "email": "mail"},
        "AUTH_LDAP_ALWAYS_UPDATE_USER": True,
        "AUTH_LDAP_CONNECTION_OPTIONS": {
            ldap.OPT_NETWORK_TIMEOUT: timeout,
            ldap.OPT_TIMEOUT: timeout,
            ldap.OPT_REFERRALS: 0,
        },
    }
