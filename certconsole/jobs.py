"""Enqueueing background work: always after the surrounding transaction commits."""

import django_rq
from django.conf import settings
from django.db import transaction


def enqueue(func_path: str, *args, queue: str = "default", **kwargs) -> None:
    """Enqueue func_path(*args, **kwargs) on queue once the current transaction commits.

    Jobs take ids, never model instances; a rolled-back transaction enqueues nothing.
    """
    if queue not in settings.RQ_QUEUE_NAMES:
        raise ValueError(f"Unknown queue {queue!r}")

    def _send():
        django_rq.get_queue(queue).enqueue(func_path, *args, **kwargs)

    transaction.on_commit(_send)
