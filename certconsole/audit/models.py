"""The append-only, hash-chained audit log."""

import hashlib
import json

from django.conf import settings
from django.db import models

from certconsole.access.models import ProjectScopedQuerySet

GENESIS_HASH = "0" * 64


class AuditEventQuerySet(ProjectScopedQuerySet):
    pass


class AuditEvent(models.Model):
    """One recorded action; rows are never updated or deleted (database triggers refuse it)."""

    class Source(models.TextChoices):
        WEB = "web", "Web"
        API = "api", "API"
        CLI = "cli", "Command line"
        JOB = "job", "Background job"
        SYSTEM = "system", "System"

    created_at = models.DateTimeField(db_index=True)
    # Plain ids with snapshots: deleting a user or project must not touch audit rows.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_name = models.CharField(max_length=200)
    source = models.CharField(max_length=10, choices=Source.choices)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    project = models.ForeignKey(
        "access.Project",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    project_name = models.CharField(max_length=200, blank=True)
    action = models.CharField(max_length=100, db_index=True)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=100, blank=True)
    target_label = models.CharField(max_length=500, blank=True)
    detail = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["project", "-id"], name="audit_project_recent"),
            models.Index(fields=["target_type", "target_id"], name="audit_target"),
            models.Index(fields=["actor_name"], name="audit_actor_name"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} by {self.actor_name}"

    def canonical(self) -> bytes:
        """The canonical JSON of the event's content, the input to its hash."""
        content = {
            "created_at": self.created_at.isoformat(timespec="microseconds"),
            "actor_id": self.actor_id,
            "actor_name": self.actor_name,
            "source": self.source,
            "ip": self.ip,
            "user_agent": self.user_agent,
            "project_id": self.project_id,
            "project_name": self.project_name,
            "action": self.action,
            "target_type": self.target_type,
            "target_id": self.target_id,
            "target_label": self.target_label,
            "detail": self.detail,
            "reason": self.reason,
            "prev_hash": self.prev_hash,
        }
        return json.dumps(content, sort_keys=True, separators=(",", ":"), default=str).encode()

    def compute_hash(self) -> str:
        """SHA-256 over the canonical content, which includes the previous event's hash."""
        return hashlib.sha256(self.canonical()).hexdigest()
