"""rotate_keyring: after a new key goes first and the command runs, the old key can go."""

import json

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from certconsole.audit.models import AuditEvent
from certconsole.keyring import KeyringError
from inventory.models import PrivateKey
from tests.pki.factory import make_chain


def rotate(capsys, *args):
    call_command("rotate_keyring", "--json", *args)
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def old_key(settings):
    return settings.CERTCONSOLE_KEYRING[0]


@pytest.fixture
def three_keys(import_pem, issued_chain):
    """Three stored keys: the fixture chain's, and two more certificates with keys."""
    import_pem(issued_chain.leaf.pem + issued_chain.leaf.key_pem)
    for _ in range(2):
        leaf = make_chain().leaf
        import_pem(leaf.pem + leaf.key_pem)
    assert PrivateKey.objects.count() == 3
    return list(PrivateKey.objects.order_by("pk"))


def unseal_all():
    return [key.unseal() for key in PrivateKey.objects.order_by("pk")]


def test_without_rotation_removing_the_old_key_loses_the_secrets(settings, three_keys):
    settings.CERTCONSOLE_KEYRING = [Fernet.generate_key().decode()]
    with pytest.raises(KeyringError):
        unseal_all()


def test_after_rotation_the_old_key_can_be_removed(settings, capsys, three_keys, old_key):
    before = [k.private_numbers() for k in unseal_all()]
    new_key = Fernet.generate_key().decode()
    settings.CERTCONSOLE_KEYRING = [new_key, old_key]
    result = rotate(capsys)
    assert (result["total"], result["rotated"], result["already_current"]) == (3, 3, 0)
    assert result["columns"]["inventory.PrivateKey.encrypted_pkcs8"] == {"total": 3, "rotated": 3}
    settings.CERTCONSOLE_KEYRING = [new_key]
    assert [k.private_numbers() for k in unseal_all()] == before


def test_rotation_is_idempotent_and_audited_once_per_run(settings, capsys, three_keys, old_key):
    settings.CERTCONSOLE_KEYRING = [Fernet.generate_key().decode(), old_key]
    rotate(capsys, "--batch-size", "2")
    tokens = list(PrivateKey.objects.order_by("pk").values_list("encrypted_pkcs8", flat=True))
    again = rotate(capsys)
    assert (again["rotated"], again["already_current"]) == (0, 3)
    assert (
        list(PrivateKey.objects.order_by("pk").values_list("encrypted_pkcs8", flat=True)) == tokens
    )
    events = AuditEvent.objects.filter(action="keyring.rotate").order_by("id")
    assert [e.detail["rotated"] for e in events] == [3, 0]
    assert all(e.source == "cli" and e.actor_name.startswith("cli:") for e in events)
    assert events[0].detail["key_id"] == again["key_id"]


def test_text_output_says_how_many(settings, capsys, three_keys, old_key):
    settings.CERTCONSOLE_KEYRING = [Fernet.generate_key().decode(), old_key]
    call_command("rotate_keyring")
    assert "Re-encrypted 3 of 3 secrets" in capsys.readouterr().out


def test_a_secret_no_key_opens_stops_the_run_before_any_write(settings, three_keys, old_key):
    stranger = Fernet(Fernet.generate_key())
    broken = three_keys[2]
    PrivateKey.objects.filter(pk=broken.pk).update(
        encrypted_pkcs8=stranger.encrypt(b"not ours").decode()
    )
    tokens = list(PrivateKey.objects.order_by("pk").values_list("encrypted_pkcs8", flat=True))
    settings.CERTCONSOLE_KEYRING = [Fernet.generate_key().decode(), old_key]
    with pytest.raises(
        CommandError, match=f"PrivateKey row id {broken.pk}; nothing was re-encrypted"
    ):
        call_command("rotate_keyring", "--batch-size", "1")
    assert (
        list(PrivateKey.objects.order_by("pk").values_list("encrypted_pkcs8", flat=True)) == tokens
    )
    assert not AuditEvent.objects.filter(action="keyring.rotate").exists()


@pytest.mark.django_db
def test_an_empty_inventory_rotates_nothing(capsys):
    assert rotate(capsys)["total"] == 0


def test_staged_uploads_are_rotated_too(settings, capsys, personas, project, old_key):
    from inventory.staging import StagedFile, claim, stage

    token = stage(personas["keycustodian"], project, [StagedFile("a.pem", b"data")], None, {})
    new_key = Fernet.generate_key().decode()
    settings.CERTCONSOLE_KEYRING = [new_key, old_key]
    result = rotate(capsys)
    assert result["columns"]["inventory.StagedUpload.payload"] == {"total": 1, "rotated": 1}
    settings.CERTCONSOLE_KEYRING = [new_key]
    assert claim(personas["keycustodian"], token).files[0].data == b"data"
