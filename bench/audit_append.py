"""Audit appends per second through record() (hash chain + lock), next to plain ORM inserts."""

import time

from django.core.management import call_command
from django.db import transaction

DEFAULT_N = 2000


def run(n: int) -> dict:
    from certconsole.access.models import Project
    from certconsole.audit import record
    from certconsole.audit.log import verify_chain

    call_command("migrate", verbosity=0)
    project, _ = Project.objects.get_or_create(slug="bench", defaults={"name": "Bench"})

    start = time.perf_counter()
    for i in range(n):
        with transaction.atomic():
            Project.objects.filter(pk=project.pk).update(description=str(i))
    baseline = time.perf_counter() - start

    start = time.perf_counter()
    for i in range(n):
        with transaction.atomic():
            record(None, "bench.append", project, i=i)
    audited = time.perf_counter() - start

    start = time.perf_counter()
    verified = verify_chain()
    verify_seconds = time.perf_counter() - start
    return {
        "n": n,
        "baseline_plain_update_per_s": round(n / baseline, 1),
        "audit_append_per_s": round(n / audited, 1),
        "ratio_to_baseline": round(baseline / audited, 3),
        "verify_events": verified.checked,
        "verify_per_s": round(verified.checked / verify_seconds, 1),
        "chain_ok": verified.ok,
    }
