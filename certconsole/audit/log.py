"""Writing and verifying the audit chain."""

import json
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from certconsole.audit.context import current
from certconsole.audit.models import GENESIS_HASH, AuditEvent

# Any constant works; it names the PostgreSQL advisory lock that serialises appends.
_CHAIN_LOCK_ID = 0x5EC0A0D17


def _lock_chain() -> None:
    """Serialise appends so the chain stays linear with several writers.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: every transaction is
    IMMEDIATE (settings), so holding the write lock already serialises writers.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_ID])


def _describe_target(target) -> tuple[str, str, str]:
    if target is None:
        return "", "", ""
    meta = target._meta
    return f"{meta.app_label}.{meta.model_name}", str(target.pk), str(target)[:500]


def _project_of(target, project):
    if project is not None:
        return project
    if target is None:
        return None
    if target._meta.label == "access.Project":
        return target
    return getattr(target, "project", None)


def _actor_fields(actor) -> tuple[int | None, str]:
    if actor is not None and getattr(actor, "is_authenticated", False):
        return actor.pk, actor.get_username()
    return None, current().principal or "system"


def record(actor, action: str, target=None, *, project=None, reason: str = "", **detail):
    """Append one event to the audit chain, inside the caller's transaction.

    actor is a user, or None for the system (the context names the CLI user,
    job or token). detail must be JSON-serialisable after str() of odd values.
    """
    ctx = current()
    target_type, target_id, target_label = _describe_target(target)
    project = _project_of(target, project)
    actor_id, actor_name = _actor_fields(actor)
    with transaction.atomic():
        _lock_chain()
        prev = AuditEvent.objects.order_by("-id").values_list("hash", flat=True).first()
        event = AuditEvent(
            created_at=timezone.now(),
            actor_id=actor_id,
            actor_name=actor_name[:200],
            source=ctx.source,
            ip=ctx.ip,
            user_agent=ctx.user_agent[:500],
            project=project,
            project_name=str(project)[:200] if project else "",
            action=action,
            target_type=target_type,
            target_id=target_id,
            target_label=target_label,
            detail=json.loads(json.dumps(detail, default=str)),
            reason=reason,
            prev_hash=prev or GENESIS_HASH,
        )
        event.hash = event.compute_hash()
        event.save(force_insert=True)
    return event


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    broken_id: int | None = None
    problem: str = ""


def verify_chain(chunk_size: int = 5000) -> VerifyResult:
    """Walk the chain in order; report the first event whose link or hash does not hold."""
    expected_prev = GENESIS_HASH
    checked = 0
    for event in AuditEvent.objects.order_by("id").iterator(chunk_size=chunk_size):
        if event.prev_hash != expected_prev:
            problem = "its previous-hash does not match the event before it (deleted or reordered)"
            return VerifyResult(False, checked, event.pk, problem)
        if event.compute_hash() != event.hash:
            return VerifyResult(False, checked, event.pk, "its content does not match its hash")
        expected_prev = event.hash
        checked += 1
    return VerifyResult(True, checked)
