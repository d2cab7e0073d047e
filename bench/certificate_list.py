"""The certificate list page at n certificates: server-side p50/p95 and queries per request.

Rows are bulk-created with the ORM (no cryptography): a realistic spread of expiry dates,
key types, issuers, labels and 1–4 names each (some wildcards). The page is rendered through
Django's test Client as a signed-in viewer; the baseline is a bare ORM read of one page.
"""

import random
import statistics
import time
from datetime import timedelta

from django.core.management import call_command
from django.db import connection, reset_queries, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

DEFAULT_N = 10_000
REQUESTS = 40
BATCH = 5000
ISSUERS = ["R10", "R11", "E5", "E6", "Sectigo RSA DV", "DigiCert G2", "Internal CA 2024"]
KEY_TYPES = ["EC-P256", "EC-P256", "RSA-2048", "RSA-2048", "RSA-4096", "EC-P384", "Ed25519"]
ENVS = ["prod", "staging", "dev", "test", ""]
APPS = ["shop", "api", "auth", "search", "billing", "cdn", "mail", ""]
SOURCES = ["uploaded", "acme", "acme", "private_ca", "discovered"]


def _populate(project, n: int) -> None:
    from inventory.models import Certificate, CertificateName

    existing = Certificate.objects.filter(project=project)
    if existing.count() == n:
        return
    CertificateName.objects.filter(certificate__project=project)._raw_delete(using="default")
    existing._raw_delete(using="default")
    rng = random.Random(42)
    now = timezone.now()
    for start in range(0, n, BATCH):
        rows, names = [], []
        for i in range(start, min(start + BATCH, n)):
            zone = f"zone{i % 997}.example.com"
            host = f"host{i}.{zone}"
            domains = [host] + [f"alt{k}-{i}.{zone}" for k in range(rng.randint(0, 2))]
            if i % 10 == 0:
                domains.append(f"*.{zone}")
            labels = {"team": f"team{i % 40}"} if i % 3 == 0 else {}
            rows.append(
                Certificate(
                    project=project,
                    name=f"cert-{i:06d} {host}",
                    source=rng.choice(SOURCES),
                    label_env=rng.choice(ENVS),
                    label_app=rng.choice(APPS),
                    label_owner=f"owner{i % 50}@example.com",
                    labels=labels,
                    primary_domain=host,
                    san_count=len(domains),
                    subject=f"CN={host},O=Bench Org {i % 20}",
                    issuer_name=rng.choice(ISSUERS),
                    key_type=rng.choice(KEY_TYPES),
                    not_after=now + timedelta(days=rng.randint(-60, 400), minutes=i),
                    has_private_key=rng.random() < 0.6,
                    revoked=rng.random() < 0.02,
                )
            )
            names.append(domains)
        with transaction.atomic():
            created = Certificate.objects.bulk_create(rows, batch_size=BATCH)
            if created[0].pk is None:  # backends without RETURNING: look the ids up
                by_name = dict(
                    Certificate.objects.filter(name__in=[c.name for c in rows]).values_list(
                        "name", "pk"
                    )
                )
                for cert in created:
                    cert.pk = by_name[cert.name]
            CertificateName.objects.bulk_create(
                [
                    CertificateName(certificate_id=cert.pk, name=d)
                    for cert, domains in zip(created, names, strict=True)
                    for d in domains
                ],
                batch_size=BATCH,
            )


def _time(fn, repeat: int) -> tuple[list[float], list]:
    fn()  # warm caches and the plan cache
    reset_queries()  # a request empties the log the capture slices: start from empty
    with CaptureQueriesContext(connection) as captured:
        fn()
    # Read now: the capture is a lazy slice of a log that the next request empties.
    queries = [(float(q["time"]) * 1000, q["sql"]) for q in captured]
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        timings.append((time.perf_counter() - start) * 1000)
    return timings, queries


def _summary(timings: list[float], queries: list) -> dict:
    ordered = sorted(timings)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 2),
        "max_ms": round(ordered[-1], 2),
        "queries": len(queries),
        "sql_ms_one_request": round(sum(ms for ms, _ in queries), 2),
        "slowest_sql_ms": round(max((ms for ms, _ in queries), default=0), 2),
    }


def run(n: int) -> dict:
    from django.contrib.auth import get_user_model

    from certconsole.access.models import Membership, Project
    from inventory.models import Certificate

    call_command("migrate", verbosity=0)
    project, _ = Project.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    user, _ = get_user_model().objects.get_or_create(username="bench-viewer")
    Membership.objects.get_or_create(user=user, project=project, role="viewer")
    start = time.perf_counter()
    _populate(project, n)
    populate_s = time.perf_counter() - start
    if connection.vendor == "postgresql":  # what autovacuum does soon after a bulk load
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE inventory_certificate")
            cursor.execute("VACUUM ANALYZE inventory_certificatename")

    client = Client()
    client.force_login(user)

    def page(params):
        def get():
            response = client.get("/certificates/", params)
            assert response.status_code == 200, response.status_code
            assert b"<tbody>" in response.content

        return get

    def baseline():
        list(
            Certificate.objects.filter(project=project)
            .order_by("not_after", "pk")
            .only("id", "name", "primary_domain", "not_after")[:50]
        )

    cases = {
        "baseline_orm_page": baseline,
        "default": page({}),
        "status_expiring": page({"status": "expiring"}),
        "search_wildcard": page({"q": "shop.zone17.example.com"}),
        "search_prefix": page({"q": "host4242"}),
        "search_broad": page({"q": "example.com"}),
        "label_env_sorted_by_name": page({"label": "env=prod", "sort": "-name"}),
        "last_page": page({"page": max(1, (n + 49) // 50)}),
    }
    results = {}
    for name, fn in cases.items():
        timings, queries = _time(fn, REQUESTS)
        results[name] = _summary(timings, queries)
    return {
        "n": n,
        "database": connection.vendor,
        "requests_per_case": REQUESTS,
        "populate_s": round(populate_s, 1),
        **results,
    }
