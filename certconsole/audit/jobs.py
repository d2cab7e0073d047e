"""Background jobs of the audit log."""

from certconsole.audit import record
from certconsole.audit.context import Source, audit_context
from certconsole.audit.log import verify_chain


def verify_audit_chain() -> dict:
    """Verify the whole chain and record the outcome as an audit event."""
    result = verify_chain()
    with audit_context(source=Source.JOB, principal="job:audit-verify"):
        record(
            None,
            "audit.verify",
            ok=result.ok,
            checked=result.checked,
            broken_id=result.broken_id,
            problem=result.problem,
        )
    return {"ok": result.ok, "checked": result.checked, "broken_id": result.broken_id}
