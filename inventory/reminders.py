"""Expiry reminders, sent exactly once: what is due, claiming it, sending digests, logging.

One run (daily job, `manage.py send_reminders`) does, with a fixed number of queries however
many certificates exist:

1. find the current versions of live certificates that crossed a threshold of their project's
   policy (crossed t ⇔ not_after ≤ now + t days; 0 = expired) — only the smallest crossed
   threshold counts, so a certificate first seen at 20 days left gets the 30-day reminder once;
2. work out recipients (owner label when an address, members by role minus opt-outs, extra
   addresses, the webhook);
3. claim one NotificationLog row per (version, threshold, channel, recipient) by inserting it
   as "sending" — a row someone else inserted is theirs (the unique constraint decides) — and
   re-claim rows a previous run marked "failed";
4. send one digest per recipient over one mail connection (one POST per project's webhook),
   marking that recipient's rows "sent" right after the server accepted, "failed" otherwise.

A renewed certificate has a new current version, so the old version's rows no longer match
anything and its reminders stop. Rows left "sending" by a run that died mid-send are never
re-claimed: we cannot know whether the mail went out, and a duplicate is what we promised not
to send (the notifications page shows them).
"""

import contextlib
import smtplib
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from django.core.exceptions import ValidationError
from django.core.mail import get_connection
from django.core.validators import validate_email
from django.db.models import Count, F, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from certconsole.access.models import Membership, Project, UserPreference
from inventory import notify
from inventory.models import Certificate, NotificationLog, NotificationPolicy

# Expired certificates are reminded about (threshold 0) only this long after expiry.
EXPIRED_GRACE_DAYS = 30
# Failed event notifications are retried by the daily run for this long.
EVENT_RETRY_DAYS = 7
WEBHOOK = NotificationLog.Channel.WEBHOOK
EMAIL = NotificationLog.Channel.EMAIL


@dataclass
class RunResult:
    """What a run found and did; `as_json()` is the command's --json output."""

    now: datetime
    dry_run: bool
    run_id: str
    projects: list[str] = field(default_factory=list)
    quiet_projects: list[str] = field(default_factory=list)
    due: int = 0
    claimed: int = 0
    already_claimed: int = 0
    sent: int = 0
    failed: int = 0
    emails_sent: int = 0
    webhooks_sent: int = 0
    errors: list[str] = field(default_factory=list)
    planned: list[dict] = field(default_factory=list)

    def as_json(self) -> dict:
        data = dict(self.__dict__)
        data["now"] = self.now.isoformat()
        return data


@dataclass(frozen=True)
class _Due:
    """One reminder that should exist: a certificate version at a threshold, to a recipient."""

    item: notify.Item
    project_id: int
    version_id: int
    channel: str
    recipient: str


def crossed_threshold(not_after: datetime, thresholds, now: datetime) -> int | None:
    """The smallest threshold already crossed (not_after ≤ now + t days), or None."""
    crossed = [t for t in thresholds if not_after <= now + timedelta(days=t)]
    return min(crossed) if crossed else None


def next_threshold(not_after: datetime, thresholds, now: datetime) -> tuple[int, datetime] | None:
    """The next threshold still ahead of now and the moment it is crossed, or None."""
    ahead = [(t, not_after - timedelta(days=t)) for t in thresholds]
    ahead = [(t, when) for t, when in ahead if when > now]
    return min(ahead, key=lambda pair: pair[1]) if ahead else None


def days_left(not_after: datetime, now: datetime) -> int:
    return (not_after - now).days


def is_address(value: str) -> bool:
    try:
        validate_email(value)
    except ValidationError:
        return False
    return True


class _Audience:
    """Who gets what in the given projects; three queries, however many certificates."""

    def __init__(self, projects: list[Project]):
        ids = [p.pk for p in projects]
        self.policies = {
            p.project_id: p for p in NotificationPolicy.objects.filter(project_id__in=ids)
        }
        for project in projects:
            self.policies.setdefault(project.pk, NotificationPolicy(project=project))
        self.members: dict[tuple[int, str], list[tuple[int, str]]] = defaultdict(list)
        for project_id, role, user_id, address in Membership.objects.filter(
            project_id__in=ids, user__is_active=True
        ).values_list("project_id", "role", "user_id", "user__email"):
            if address:
                self.members[(project_id, role)].append((user_id, address.lower()))
        opt_outs = UserPreference.digest_opt_out.through.objects.filter(project_id__in=ids)
        self.opted_out = set(opt_outs.values_list("project_id", "userpreference__user_id"))

    def policy(self, project_id: int) -> NotificationPolicy:
        return self.policies[project_id]

    def addresses(self, project_id: int, owner_label: str) -> list[str]:
        """Email recipients of one certificate's notifications, lower-case, in a stable order."""
        policy = self.policies[project_id]
        if not policy.email_enabled:
            return []
        owner = owner_label.strip().lower()
        found: list[str] = []
        if policy.notify_owner and owner and is_address(owner):
            found.append(owner)
        for role in policy.recipient_roles:
            for user_id, address in self.members.get((project_id, role), []):
                # Opting out covers the project's digests, never certificates you own.
                if (project_id, user_id) in self.opted_out and address != owner:
                    continue
                found.append(address)
        found += [a.strip().lower() for a in policy.extra_recipients if a.strip()]
        return list(dict.fromkeys(found))


# orders.RenewalPolicy's reverse relation (orders imports inventory, never the other way).
RENEWAL = "renewal_policy"


def with_renewal(queryset):
    """select_related the renewal policy when the orders app provides one."""
    return queryset.select_related(RENEWAL) if hasattr(Certificate, RENEWAL) else queryset


def renewal_facts(cert) -> dict:
    """Item fields: is automatic renewal set up, and how did it last go."""
    policy = getattr(cert, RENEWAL, None) if hasattr(Certificate, RENEWAL) else None
    if policy is None or not policy.auto_renew:
        return {"renewal": "not set up"}
    return {"renewal": "set up", "renewal_last_result": policy.last_result or "not run yet"}


def _certificate_rows(projects: list[Project], now: datetime, horizon: int):
    """Live certificates whose current version may have crossed a threshold: one query."""
    fields = [
        "id",
        "project_id",
        "name",
        "label_owner",
        "not_after",
        "primary_domain",
        "current_version_id",
        "current_version__sans",
        "current_version__common_name",
    ]
    if hasattr(Certificate, RENEWAL):
        fields += [f"{RENEWAL}__auto_renew", f"{RENEWAL}__last_result"]
    rows = Certificate.objects.filter(
        project__in=projects,
        current_version__isnull=False,
        revoked=False,
        not_after__lte=now + timedelta(days=horizon),
        not_after__gt=now - timedelta(days=EXPIRED_GRACE_DAYS),
    ).select_related("current_version")
    return with_renewal(rows).only(*fields).annotate(**deployed_count())


def make_item(cert, project_slug: str, now: datetime, **extra) -> notify.Item:
    version = cert.current_version
    domains = version.dns_names if version is not None else [cert.primary_domain]
    extra = {**renewal_facts(cert), **extra}
    return notify.Item(
        certificate_id=cert.pk,
        name=cert.name,
        project=project_slug,
        domains=domains or [cert.primary_domain],
        not_after=cert.not_after,
        days_left=days_left(cert.not_after, now) if cert.not_after else None,
        deployed_count=getattr(cert, "deployed_count", 0),
        url=notify.link(cert.get_absolute_url()),
        **extra,
    )


def due_reminders(projects: list[Project], audience: _Audience, now: datetime) -> list[_Due]:
    """Every (certificate version, smallest crossed threshold, recipient) that should exist."""
    slugs = {p.pk: p.slug for p in projects}
    policies = [audience.policy(p.pk) for p in projects]
    horizon = max((max(p.thresholds, default=0) for p in policies), default=0)
    due: list[_Due] = []
    for cert in _certificate_rows(projects, now, horizon):
        policy = audience.policy(cert.project_id)
        threshold = crossed_threshold(cert.not_after, policy.thresholds, now)
        if threshold is None:
            continue
        item = make_item(cert, slugs[cert.project_id], now, threshold=threshold)
        for address in audience.addresses(cert.project_id, cert.label_owner):
            due.append(_Due(item, cert.project_id, cert.current_version_id, EMAIL, address))
        if policy.webhook_url:
            due.append(
                _Due(item, cert.project_id, cert.current_version_id, WEBHOOK, policy.webhook_url)
            )
    return due


def _claim(due: list[_Due], claim: uuid.UUID) -> dict[tuple, int]:
    """Insert "sending" rows (a conflict means another run has it) and re-claim failed ones.

    Returns {(version_id, threshold, channel, recipient): row id} for the rows this run owns.
    Four queries however many rows.
    """
    NotificationLog.objects.bulk_create(
        [
            NotificationLog(
                project_id=d.project_id,
                certificate_id=d.item.certificate_id,
                version_id=d.version_id,
                threshold=d.item.threshold,
                channel=d.channel,
                recipient=d.recipient,
                claim=claim,
            )
            for d in due
        ],
        ignore_conflicts=True,
        batch_size=500,
    )
    wanted = {_key(d) for d in due}
    failed = NotificationLog.objects.filter(
        kind=NotificationLog.Kind.EXPIRY,
        state=NotificationLog.State.FAILED,
        version_id__in={d.version_id for d in due},
    ).values_list("pk", "version_id", "threshold", "channel", "recipient")
    retry = [pk for pk, *key in failed if tuple(key) in wanted]
    if retry:
        NotificationLog.objects.filter(pk__in=retry, state=NotificationLog.State.FAILED).update(
            state=NotificationLog.State.SENDING, claim=claim, attempts=F("attempts") + 1
        )
    mine = NotificationLog.objects.filter(claim=claim, state=NotificationLog.State.SENDING)
    rows = mine.values_list("pk", "version_id", "threshold", "channel", "recipient")
    return {tuple(key): pk for pk, *key in rows}


def _key(due: _Due) -> tuple:
    return (due.version_id, due.item.threshold, due.channel, due.recipient)


def _mark(ids: list[int], error: str = "") -> None:
    rows = NotificationLog.objects.filter(pk__in=ids, state=NotificationLog.State.SENDING)
    if error:
        rows.update(state=NotificationLog.State.FAILED, error=error[:2000])
    else:
        rows.update(state=NotificationLog.State.SENT, sent_at=timezone.now(), error="")


def _deliver(owned: list[tuple[_Due, int]], audience: _Audience, result: RunResult) -> None:
    """One digest per address, one POST per webhook; rows marked as each one goes out."""
    by_address: dict[str, list[tuple[_Due, int]]] = defaultdict(list)
    by_webhook: dict[tuple[int, str], list[tuple[_Due, int]]] = defaultdict(list)
    for due, pk in owned:
        if due.channel == EMAIL:
            by_address[due.recipient].append((due, pk))
        else:
            by_webhook[(due.project_id, due.recipient)].append((due, pk))
    if by_address:
        connection = get_connection(fail_silently=False)
        try:
            for address, entries in sorted(by_address.items()):
                digest = notify.Digest(address, [due.item for due, _ in entries])
                if _attempt(partial(notify.send_email, connection, digest), entries, result):
                    result.emails_sent += 1
        finally:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                connection.close()  # a server that went away mid-run
    for (project_id, url), entries in sorted(by_webhook.items()):
        items = [due.item for due, _ in entries]
        payload = notify.webhook_body(items[0].project, items, result.now)
        secret = audience.policy(project_id).webhook_secret()
        if _attempt(partial(notify.send_webhook, url, secret, payload), entries, result):
            result.webhooks_sent += 1


def _attempt(send, entries: list[tuple[_Due, int]], result: RunResult) -> bool:
    """Send, then mark the entries' rows sent or failed (the next run retries failed ones)."""
    ids = [pk for _, pk in entries]
    try:
        send()
    except Exception as exc:  # SMTP, HTTP, even rendering: the next run retries, others go on
        error = (
            str(exc) if isinstance(exc, notify.DeliveryError) else f"{type(exc).__name__}: {exc}"
        )
        _mark(ids, error)
        result.failed += len(ids)
        result.errors.append(error)
        return False
    _mark(ids)
    result.sent += len(ids)
    return True


def run(*, project: Project | None = None, now: datetime | None = None, dry_run: bool = False):
    """The daily run: send every due reminder once. Returns a RunResult."""
    now = now or timezone.now()
    claim = uuid.uuid4()
    projects = [project] if project is not None else list(Project.objects.order_by("slug"))
    result = RunResult(now=now, dry_run=dry_run, run_id=str(claim))
    audience = _Audience(projects)
    weekday = timezone.localtime(now).weekday()
    active = []
    for p in projects:
        policy = audience.policy(p.pk)
        if not policy.enabled:
            continue
        if weekday in policy.quiet_days:
            result.quiet_projects.append(p.slug)
            continue
        active.append(p)
    result.projects = [p.slug for p in active]
    due = due_reminders(active, audience, now) if active else []
    result.due = len(due)
    if dry_run:
        result.planned = [
            {
                "certificate": d.item.name,
                "project": d.item.project,
                "threshold": d.item.threshold,
                "days_left": d.item.days_left,
                "channel": d.channel,
                "recipient": d.recipient,
            }
            for d in due
        ]
        return result
    owned_ids = _claim(due, claim) if due else {}
    owned = []
    for d in due:
        pk = owned_ids.get((d.version_id, d.item.threshold, d.channel, d.recipient))
        if pk is not None:
            owned.append((d, pk))
    owned += _reclaim_failed_events(active, claim, now)
    result.claimed = len(owned)
    result.already_claimed = len(due) - len(owned_ids)
    _deliver(owned, audience, result)
    return result


def _reclaim_failed_events(projects, claim: uuid.UUID, now: datetime) -> list[tuple[_Due, int]]:
    """Events whose delivery failed recently, claimed again for this run (two queries)."""
    failed = NotificationLog.objects.filter(
        project__in=projects,
        state=NotificationLog.State.FAILED,
        created_at__gte=now - timedelta(days=EVENT_RETRY_DAYS),
    ).exclude(kind=NotificationLog.Kind.EXPIRY)
    failed.update(state=NotificationLog.State.SENDING, claim=claim, attempts=F("attempts") + 1)
    rows = NotificationLog.objects.filter(claim=claim, state=NotificationLog.State.SENDING).exclude(
        kind=NotificationLog.Kind.EXPIRY
    )
    rows = rows.select_related("certificate__current_version", "project")
    if hasattr(Certificate, RENEWAL):
        rows = rows.select_related(f"certificate__{RENEWAL}")
    return [(_event_due(row, now), row.pk) for row in rows]


def _event_due(row: NotificationLog, now: datetime) -> _Due:
    item = make_item(row.certificate, row.project.slug, now, kind=row.kind, message=row.message)
    return _Due(item, row.project_id, row.version_id, row.channel, row.recipient)


def notify_event(project: Project, certificate: Certificate, kind: str, message: str):
    """Tell the certificate's audience about an event (failed renewal, failed deployment) now.

    Same recipients, channels, log and retry as reminders; each event is its own row.
    Returns the RunResult of this small run.
    """
    if kind not in NotificationLog.Kind.values or kind == NotificationLog.Kind.EXPIRY:
        raise ValueError(f"Unknown event kind {kind!r}")
    now = timezone.now()
    claim = uuid.uuid4()
    result = RunResult(now=now, dry_run=False, run_id=str(claim), projects=[project.slug])
    audience = _Audience([project])
    policy = audience.policy(project.pk)
    if not policy.enabled:
        return result
    certificate = (
        with_renewal(Certificate.objects.filter(pk=certificate.pk))
        .select_related("current_version")
        .annotate(**deployed_count())
        .get()
    )
    item = make_item(certificate, project.slug, now, kind=kind, message=message)
    targets = [(EMAIL, a) for a in audience.addresses(project.pk, certificate.label_owner)]
    if policy.webhook_url:
        targets.append((WEBHOOK, policy.webhook_url))
    rows = NotificationLog.objects.bulk_create(
        [
            NotificationLog(
                project=project,
                certificate=certificate,
                version_id=certificate.current_version_id,
                kind=kind,
                channel=channel,
                recipient=recipient,
                message=message,
                claim=claim,
            )
            for channel, recipient in targets
        ]
    )
    if rows and rows[0].pk is None:
        ids = dict(NotificationLog.objects.filter(claim=claim).values_list("recipient", "pk"))
        for row in rows:
            row.pk = ids[row.recipient]
    owned = [
        (_Due(item, project.pk, certificate.current_version_id, row.channel, row.recipient), row.pk)
        for row in rows
    ]
    result.due = result.claimed = len(owned)
    _deliver(owned, audience, result)
    return result


def deployed_count() -> dict:
    """annotate(**deployed_count()): how many bindings serve the certificate.

    Binding lives in deployments, which inventory does not import: reach it through the
    reverse relation. A subquery, not a join, so no GROUP BY over the selected columns.
    """
    if not hasattr(Certificate, "bindings"):
        return {}
    binding = Certificate._meta.get_field("bindings").related_model
    count = (
        binding.objects.filter(certificate=OuterRef("pk"))
        .order_by()
        .values("certificate")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return {"deployed_count": Coalesce(Subquery(count), 0)}


def certificate_schedule(certificates, policy: NotificationPolicy, now: datetime):
    """(certificate, next threshold, when) for each certificate with a reminder still ahead."""
    planned = []
    for cert in certificates:
        if cert.not_after is None:
            continue
        upcoming = next_threshold(cert.not_after, policy.thresholds, now)
        if upcoming is not None:
            planned.append((cert, *upcoming))
    return sorted(planned, key=lambda row: row[2])
