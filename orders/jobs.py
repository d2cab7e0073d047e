"""RQ entry points of the orders app (queue "acme"): thin calls into issuance and renewal."""

from certconsole.audit.context import Source, audit_context
from certconsole.jobs import enqueue


def _job(name: str):
    return audit_context(source=Source.JOB, principal=f"job:orders.jobs.{name}")


def advance_order(order_id: int) -> str | None:
    """Move one order forward as far as it goes now (idempotent; safe to run twice)."""
    from orders import issuance

    with _job("advance_order"):
        return issuance.advance(order_id)


def sweep_orders() -> int:
    """Re-enqueue every order that is due and held by no live worker (stalled or retrying)."""
    from orders import issuance

    ids = list(issuance.due_orders().values_list("pk", flat=True)[:500])
    for order_id in ids:
        enqueue("orders.jobs.advance_order", order_id, queue="acme")
    return len(ids)


def renew_due() -> list[int]:
    """Start a renewal order for every certificate whose policy says it is due."""
    from orders import renewal

    with _job("renew_due"):
        return [order.pk for order in renewal.renew_due()]


def regenerate_crls() -> int:
    """Re-sign the CRL of every active private CA (daily; revocations re-sign at once)."""
    from orders import private_ca

    with _job("regenerate_crls"):
        return private_ca.regenerate_all()
