"""The permission catalogue: every permission, and which roles grant it.

This module is the only place that says who may do what. Permissions are
project-scoped strings "<noun>.<verb>"; a user's rights in a project are the
union of the permissions of their roles there.
"""

from django.db import models


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    REQUESTER = "requester", "Requester"
    DEPLOYER = "deployer", "Deployer"
    KEY_CUSTODIAN = "keycustodian", "KeyCustodian"
    AUDITOR = "auditor", "Auditor"
    PROJECT_ADMIN = "projectadmin", "ProjectAdmin"


PERMISSIONS: dict[str, str] = {
    "project.view": "See the project and its members",
    "certificate.view": "See certificate metadata, chains and history",
    "certificate.download": "Download public parts (certificate, chain, PKCS#7)",
    "certificate.create": "Upload public certificates",
    "certificate.change": "Edit names, labels and renewal settings",
    "certificate.renew": "Renew a certificate",
    "certificate.revoke": "Revoke a certificate version",
    "certificate.upload_key": "Upload private keys",
    "certificate.export_key": "Export private keys (audited, needs re-authentication)",
    "order.view": "See orders and their validation",
    "order.create": "Create orders",
    "order.cancel": "Cancel orders",
    "order.approve": "Approve or reject other people's orders",
    "issuer.view": "See issuers (ACME accounts, CAs)",
    "issuer.manage": "Manage issuers, private CAs and DNS providers",
    "target.view": "See deployment targets and bindings",
    "target.manage": "Manage deployment targets and bindings",
    "deployment.view": "See deployments and endpoint checks",
    "deployment.run": "Start deployments",
    "deployment.rollback": "Roll deployments back",
    "audit.view": "Read the project's audit log",
    "audit.export": "Export the project's audit log",
    "member.manage": "Add and remove members and roles",
    "project.manage": "Change project settings and policies",
}

_VIEWER = {
    "project.view",
    "certificate.view",
    "certificate.download",
    "order.view",
    "issuer.view",
    "target.view",
    "deployment.view",
}

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.VIEWER: frozenset(_VIEWER),
    Role.REQUESTER: frozenset(
        _VIEWER
        | {
            "certificate.create",
            "certificate.change",
            "certificate.renew",
            "order.create",
            "order.cancel",
        }
    ),
    Role.DEPLOYER: frozenset(_VIEWER | {"target.manage", "deployment.run", "deployment.rollback"}),
    # Uploading a key comes with uploading its certificate.
    Role.KEY_CUSTODIAN: frozenset(
        _VIEWER | {"certificate.create", "certificate.upload_key", "certificate.export_key"}
    ),
    Role.AUDITOR: frozenset({"project.view", "audit.view", "audit.export"}),
    Role.PROJECT_ADMIN: frozenset(PERMISSIONS),
}

# Denials of these are audited: they are the acts a security team watches.
SENSITIVE_PERMISSIONS = frozenset(
    {
        "certificate.export_key",
        "certificate.upload_key",
        "certificate.revoke",
        "member.manage",
        "project.manage",
        "audit.export",
        "issuer.manage",
        "deployment.rollback",
    }
)

ROLE_DESCRIPTIONS: dict[str, str] = {
    Role.VIEWER: "See certificate metadata, orders and deployments.",
    Role.REQUESTER: "Viewer, plus create orders, renew, and upload public certificates.",
    Role.DEPLOYER: "Viewer, plus manage targets and bindings, run and roll back deployments.",
    Role.KEY_CUSTODIAN: "Viewer, plus upload and export private keys.",
    Role.AUDITOR: "Read and export the project's audit log; nothing else.",
    Role.PROJECT_ADMIN: "Everything in the project, including members and settings.",
}


def permissions_for(roles) -> frozenset[str]:
    """The union of the permissions granted by the given roles."""
    granted: set[str] = set()
    for role in roles:
        granted |= ROLE_PERMISSIONS[role]
    return frozenset(granted)


def roles_granting(perm: str) -> list[str]:
    """Every role whose permissions include perm."""
    if perm not in PERMISSIONS:
        raise KeyError(f"Unknown permission {perm!r}; add it to the catalogue.")
    return [role for role, perms in ROLE_PERMISSIONS.items() if perm in perms]
