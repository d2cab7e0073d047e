"""Jobs go through a real Redis, only after their transaction commits."""

import django_rq
import pytest
from django.db import transaction
from rq import SimpleWorker

from certconsole.audit.models import AuditEvent
from certconsole.jobs import enqueue
from certconsole.schedule import SCHEDULE


def run_burst(queue_name="default"):
    queue = django_rq.get_queue(queue_name)
    SimpleWorker([queue], connection=queue.connection).work(burst=True)
    return queue


@pytest.mark.django_db(transaction=True)
def test_job_is_enqueued_only_after_commit_and_runs_on_a_worker(rq_redis, project):
    queue = django_rq.get_queue("default")
    with transaction.atomic():
        enqueue("certconsole.audit.jobs.verify_audit_chain")
        assert queue.count == 0, "enqueued before the transaction committed"
    assert queue.count == 1
    run_burst()
    event = AuditEvent.objects.get(action="audit.verify")
    assert (event.source, event.actor_name, event.detail["ok"]) == ("job", "job:audit-verify", True)


@pytest.mark.django_db(transaction=True)
def test_rolled_back_transaction_enqueues_nothing(rq_redis):
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue("certconsole.audit.jobs.verify_audit_chain", queue="notify")
        raise RuntimeError("abort")
    assert django_rq.get_queue("notify").count == 0


def test_unknown_queue_is_refused():
    with pytest.raises(ValueError, match="Unknown queue"):
        enqueue("certconsole.audit.jobs.verify_audit_chain", queue="nope")


def test_schedule_registry_feeds_the_rq_cron_scheduler():
    from rq import cron

    import certconsole.rqcron  # registers SCHEDULE with rq.cron on import

    registered = {job["name"]: job for job in cron._job_data_registry}
    for entry in SCHEDULE:
        assert registered[entry.name]["queue_name"] == entry.queue
        assert registered[entry.name]["cron"] == entry.cron
        assert callable(registered[entry.name]["func"])
    assert certconsole.rqcron.SCHEDULE is SCHEDULE
