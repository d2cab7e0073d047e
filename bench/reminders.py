"""A reminder run over n certificates: wall time and query count, at n/10 and n in one run.

Certificates and minimal versions are bulk-created (no cryptography); about 300 of them per
project crossed a threshold (or expired lately), the rest expire months away. Mail goes to
Django's locmem backend, so the time is ours, not an SMTP server's. The query count must be
the same at both sizes; the baseline is one indexed count over the project in the same run.
"""

import time
from datetime import timedelta

from django.conf import settings
from django.core import mail
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

DEFAULT_N = 100_000
DUE = 300
BATCH = 5000
OWNERS = 40


def populate(project, n: int, due: int = DUE, now=None) -> None:
    """n certificates with a current version each; `due` of them within 45 days or expired."""
    from inventory.models import Certificate, CertificateVersion

    existing = Certificate.objects.filter(project=project)
    if existing.count() == n:
        return
    CertificateVersion.objects.filter(project=project)._raw_delete(using="default")
    existing._raw_delete(using="default")
    now = now or timezone.now()
    step = max(n // due, 1)
    for start in range(0, n, BATCH):
        certs, versions = [], []
        for i in range(start, min(start + BATCH, n)):
            is_due = i % step == 0 and i // step < due
            # Due ones spread over −5 … 44 days: every threshold, some just expired.
            days = (i // step) % 50 - 5 if is_due else 60 + i % 400
            not_after = now + timedelta(days=days, hours=i % 24)
            host = f"host{i}.zone{i % 997}.example.com"
            certs.append(
                Certificate(
                    project=project,
                    name=f"{project.slug}-{i:06d}",
                    label_owner=f"owner{i % OWNERS}@example.com" if i % 5 else "",
                    primary_domain=host,
                    san_count=1,
                    subject=f"CN={host}",
                    issuer_name="Bench CA",
                    key_type="RSA-2048" if i % 9 else "RSA-1024",
                    not_after=not_after,
                )
            )
            versions.append((host, not_after, i))
        with transaction.atomic():
            created = Certificate.objects.bulk_create(certs, batch_size=BATCH)
            if created[0].pk is None:
                ids = dict(
                    Certificate.objects.filter(name__in=[c.name for c in certs]).values_list(
                        "name", "pk"
                    )
                )
                for cert in created:
                    cert.pk = ids[cert.name]
            CertificateVersion.objects.bulk_create(
                [
                    CertificateVersion(
                        certificate_id=cert.pk,
                        project=project,
                        der=b"-",
                        sha256=f"{project.pk:08x}{i:056x}",
                        sha1=f"{i:040x}",
                        serial=f"{i:x}",
                        subject=f"CN={host}",
                        issuer="CN=Bench CA",
                        common_name=host,
                        sans=[{"kind": "dns", "value": host}],
                        not_before=not_after - timedelta(days=397),
                        not_after=not_after,
                        key_type=cert.key_type,
                        key_size=1024 if cert.key_type == "RSA-1024" else 2048,
                        signature_algorithm="sha256WithRSAEncryption",
                        spki_sha256=f"{i:064x}",
                        chain_complete=i % 13 != 0,
                    )
                    for cert, (host, not_after, i) in zip(created, versions, strict=True)
                ],
                batch_size=BATCH,
            )
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE inventory_certificate SET current_version_id = (SELECT v.id FROM "
            "inventory_certificateversion v WHERE v.certificate_id = inventory_certificate.id) "
            "WHERE project_id = %s",
            [project.pk],
        )
        if connection.vendor == "postgresql":
            cursor.execute("VACUUM ANALYZE inventory_certificate")
            cursor.execute("VACUUM ANALYZE inventory_certificateversion")


def bench_project(slug: str, n: int):
    from django.contrib.auth import get_user_model

    from certconsole.access.models import Membership, Project

    project, _ = Project.objects.get_or_create(slug=slug, defaults={"name": slug})
    admin, _ = get_user_model().objects.get_or_create(
        username=f"{slug}-admin", defaults={"email": f"admin@{slug}.example.com"}
    )
    Membership.objects.get_or_create(user=admin, project=project, role="projectadmin")
    start = time.perf_counter()
    populate(project, n)
    return project, admin, time.perf_counter() - start


def _measure(project) -> dict:
    from inventory import reminders
    from inventory.models import Certificate, NotificationLog

    NotificationLog.objects.filter(project=project)._raw_delete(using="default")
    mail.outbox = []
    start = time.perf_counter()
    Certificate.objects.filter(project=project, not_after__gt=timezone.now()).count()
    baseline_ms = (time.perf_counter() - start) * 1000

    with CaptureQueriesContext(connection) as dry_queries:
        start = time.perf_counter()
        dry = reminders.run(project=project, dry_run=True)
        dry_s = time.perf_counter() - start
    with CaptureQueriesContext(connection) as queries:
        start = time.perf_counter()
        result = reminders.run(project=project)
        run_s = time.perf_counter() - start
    with CaptureQueriesContext(connection) as again_queries:
        start = time.perf_counter()
        again = reminders.run(project=project)
        again_s = time.perf_counter() - start
    return {
        "certificates": Certificate.objects.filter(project=project).count(),
        "baseline_count_ms": round(baseline_ms, 2),
        "due_reminders": dry.due,
        "dry_run_s": round(dry_s, 3),
        "dry_run_queries": len(dry_queries),
        "run_s": round(run_s, 3),
        "run_queries": len(queries),
        "sent": result.sent,
        "emails": len(mail.outbox),
        "second_run_s": round(again_s, 3),
        "second_run_queries": len(again_queries),
        "second_run_sent": again.sent,
    }


def run(n: int) -> dict:
    call_command("migrate", verbosity=0)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    small_n = max(n // 10, DUE)
    small, _, small_populate = bench_project(f"bench-rem-{small_n}", small_n)
    large, _, large_populate = bench_project(f"bench-rem-{n}", n)
    results = {"small": _measure(small), "large": _measure(large)}
    return {
        "n": n,
        "database": connection.vendor,
        "populate_s": round(small_populate + large_populate, 1),
        f"at_{small_n}": results["small"],
        f"at_{n}": results["large"],
        "queries_constant": results["small"]["run_queries"] == results["large"]["run_queries"],
    }
