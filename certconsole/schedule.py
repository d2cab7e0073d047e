"""The one schedule registry: every periodic job of the product, declared here.

`certconsole/rqcron.py` hands these to the RQ cron scheduler (`manage.py rqcron
certconsole.rqcron`); tests call the functions directly.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Periodic:
    name: str
    func: str  # dotted path of a function in some <app>/jobs.py
    queue: str
    cron: str  # crontab expression, UTC
    description: str


SCHEDULE: tuple[Periodic, ...] = (
    Periodic(
        name="audit-verify",
        func="certconsole.audit.jobs.verify_audit_chain",
        queue="default",
        cron="17 3 * * *",
        description="Verify the audit hash chain every night and audit the result.",
    ),
    Periodic(
        name="endpoint-checks",
        func="deployments.jobs.check_endpoints_job",
        queue="scan",
        cron="*/15 * * * *",
        description=(
            "Handshake with every binding and monitored endpoint (served certificate, chain, "
            "drift); prune old checks; re-enqueue rollouts abandoned by a killed worker."
        ),
    ),
    Periodic(
        name="expiry-reminders",
        func="inventory.jobs.send_reminders_job",
        queue="notify",
        cron="0 7 * * *",
        description="Send expiry reminder digests (each reminder once) and retry failed ones.",
    ),
    Periodic(
        name="acme-order-sweep",
        func="orders.jobs.sweep_orders",
        queue="acme",
        cron="* * * * *",
        description="Re-enqueue ACME orders that are due or whose worker stopped.",
    ),
    Periodic(
        name="acme-renewals",
        func="orders.jobs.renew_due",
        queue="acme",
        cron="23 * * * *",
        description="Start renewal orders for certificates that are due.",
    ),
    Periodic(
        name="ca-crls",
        func="orders.jobs.regenerate_crls",
        queue="default",
        cron="41 2 * * *",
        description="Re-sign the CRL of every private CA (they are also re-signed on revoke).",
    ),
)
