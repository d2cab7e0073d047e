"""The audit log is append-only, hash-chained, and audit_verify finds tampering."""

import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from certconsole.audit import record, triggers
from certconsole.audit.log import verify_chain
from certconsole.audit.models import GENESIS_HASH, AuditEvent


@pytest.fixture
def three_events(project):
    return [record(None, f"test.step{i}", project, step=i) for i in range(3)]


def test_events_link_to_the_previous_hash(three_events):
    first, second, third = three_events
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert third.prev_hash == second.hash
    assert verify_chain().ok
    assert verify_chain().checked == 3


def test_database_refuses_to_update_an_event(three_events):
    event = three_events[1]
    event.reason = "rewritten history"
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        event.save()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="nothing.happened")


def test_database_refuses_to_delete_an_event(three_events):
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=three_events[0].pk).delete()
    assert AuditEvent.objects.count() == 3


def tamper(sql, params):
    """Change audit rows behind the triggers' back, as a DBA with full access could."""
    triggers.remove(connection)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
    finally:
        triggers.install(connection)


def test_audit_verify_passes_on_an_intact_chain(three_events, capsys):
    call_command("audit_verify")
    assert "3 events verified" in capsys.readouterr().out


def test_audit_verify_names_an_event_changed_behind_the_triggers(three_events):
    changed = three_events[1]
    tamper("UPDATE audit_auditevent SET actor_name = %s WHERE id = %s", ["mallory", changed.pk])
    with pytest.raises(CommandError, match=rf"event #{changed.pk}: its content does not match"):
        call_command("audit_verify")


def test_audit_verify_names_the_event_after_a_deleted_one(three_events):
    tamper("DELETE FROM audit_auditevent WHERE id = %s", [three_events[1].pk])
    with pytest.raises(CommandError, match=rf"event #{three_events[2].pk}: its previous-hash"):
        call_command("audit_verify")


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_keep_the_chain_linear(project):
    writers, per_writer = 4, 15
    errors = []

    def write(n):
        try:
            for i in range(per_writer):
                with transaction.atomic():
                    record(None, "test.concurrent", project, writer=n, i=i)
        except Exception as exc:  # collected and asserted below
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    result = verify_chain()
    assert result.ok, result
    assert result.checked == writers * per_writer
    prev_hashes = list(AuditEvent.objects.values_list("prev_hash", flat=True))
    assert len(set(prev_hashes)) == len(prev_hashes), "two events claim the same predecessor"
