"""Where the current action comes from (web, api, cli, job), for the audit log."""

import contextvars
import getpass
from contextlib import contextmanager
from dataclasses import dataclass


class Source:
    WEB = "web"
    API = "api"
    CLI = "cli"
    JOB = "job"
    SYSTEM = "system"


@dataclass(frozen=True)
class AuditContext:
    source: str = Source.SYSTEM
    ip: str | None = None
    user_agent: str = ""
    # Who acts when no user does: "cli:root", "job:orders.jobs.renew", "token:ab12…".
    principal: str = ""


_current: contextvars.ContextVar[AuditContext] = contextvars.ContextVar(
    "certconsole_audit_context",
    default=AuditContext(),  # noqa: B039 (frozen)
)


def current() -> AuditContext:
    """The context of the action being performed now."""
    return _current.get()


@contextmanager
def audit_context(**fields):
    """Run a block with the given audit context fields (source, ip, user_agent, principal)."""
    token = _current.set(AuditContext(**fields))
    try:
        yield
    finally:
        _current.reset(token)


def cli_context():
    """The context for management commands: source cli, principal the OS user."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return audit_context(source=Source.CLI, principal=f"cli:{user}")
