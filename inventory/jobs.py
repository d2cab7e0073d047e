"""Background jobs of the inventory (run by RQ; declared in certconsole/schedule.py)."""

from certconsole.audit.context import Source, audit_context
from inventory import reminders


def send_reminders_job() -> dict:
    """The daily reminder run (queue "notify"); safe to run twice at once."""
    with audit_context(source=Source.JOB, principal="job:inventory.send_reminders"):
        result = reminders.run()
    return {"sent": result.sent, "failed": result.failed, "claimed": result.claimed}
