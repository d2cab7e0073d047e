"""The dashboard at n certificates: server-side p50/p95 and queries per request.

Uses the certificates of bench/reminders.py (a version each, some weak keys, incomplete
chains and owner-less ones). Pages go through Django's test Client as a signed-in
Viewer; the baseline is one aggregate count over the same rows, in the same run.
"""

import re
import statistics
import time

from django.core.management import call_command
from django.db import connection, reset_queries
from django.db.models import Count, Q
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bench.reminders import bench_project

DEFAULT_N = 100_000
REQUESTS = 40
TARGET_P95_MS = 200


def _time(fn) -> tuple[list[float], int]:
    fn()  # warm caches
    reset_queries()
    with CaptureQueriesContext(connection) as captured:
        fn()
    count = len(captured)
    timings = []
    for _ in range(REQUESTS):
        start = time.perf_counter()
        fn()
        timings.append((time.perf_counter() - start) * 1000)
    return timings, count


def _summary(timings: list[float], queries: int) -> dict:
    ordered = sorted(timings)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 2),
        "max_ms": round(ordered[-1], 2),
        "queries": queries,
    }


def run(n: int) -> dict:
    from inventory.models import Certificate

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    from certconsole.access.models import Membership

    project, _, populate_s = bench_project(f"bench-rem-{n}", n)
    # A Viewer: privileged roles may need a second factor first (sign-in security).
    viewer, _ = get_user_model().objects.get_or_create(username=f"{project.slug}-viewer")
    Membership.objects.get_or_create(user=viewer, project=project, role="viewer")
    client = Client()
    client.force_login(viewer)

    def page(query: str):
        def get():
            response = client.get("/" + query)
            assert response.status_code == 200, response.status_code
            assert b'<svg class="timeline"' in response.content
            # The viewer sees the estate: the valid count is not zero.
            assert re.search(rb'status-valid"[^>]*>\s*<span class="number">[1-9]', response.content)

        return get

    def baseline():
        Certificate.objects.filter(project=project).aggregate(
            expired=Count("pk", filter=Q(not_after__lte=timezone.now()))
        )

    cases = {"baseline_one_aggregate": baseline, "dashboard": page(""), "all": page("?scope=all")}
    results = {name: _summary(*_time(fn)) for name, fn in cases.items()}
    return {
        "n": n,
        "database": connection.vendor,
        "requests_per_case": REQUESTS,
        "populate_s": round(populate_s, 1),
        "target_p95_ms": TARGET_P95_MS,
        **results,
    }
