"""Owners hear about failed automatic renewals through the reminders path."""

import logging

from django.dispatch import receiver

from inventory.models import Certificate, NotificationLog
from inventory.reminders import notify_event
from orders.issuance import order_failed

log = logging.getLogger(__name__)


@receiver(order_failed)
def notify_failed_renewal(sender, order_id, certificate_id, is_renewal, message, **kwargs):
    """A failed renewal is mailed (and posted) to the certificate's audience, once."""
    if not is_renewal or certificate_id is None:
        return
    certificate = Certificate.objects.select_related("project").filter(pk=certificate_id).first()
    if certificate is None:
        return
    try:
        notify_event(
            certificate.project,
            certificate,
            NotificationLog.Kind.RENEWAL_FAILED,
            f"Automatic renewal failed (order #{order_id}): {message}",
        )
    except Exception:  # a notification problem must not undo or hide the failure itself
        log.exception("Could not send the renewal-failure notice for order %s", order_id)
