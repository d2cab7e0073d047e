"""Re-encrypt every stored secret under the newest key of CERTCONSOLE_KEYRING.

Run it after putting a new key first in the keyring; once it reports success
the old key can be removed. It first checks that every secret decrypts, so a
secret no key opens stops the run before anything is written. Then it
rewrites in batches, one transaction each: if the run is interrupted, the
rows already done are under the new key, the rest under the old one, both
still in the ring — running it again finishes the job (rows already under
the newest key are skipped, so a second run changes nothing).
"""

import json
from dataclasses import asdict, dataclass, field

from cryptography.fernet import Fernet, InvalidToken
from django.apps import apps
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from certconsole import keyring
from certconsole.audit import record
from certconsole.audit.context import cli_context

BATCH_SIZE = 500

# Every column that holds a keyring token. A new secret column is one line here.
SECRET_COLUMNS = [
    ("inventory.PrivateKey", "encrypted_pkcs8"),
    ("inventory.StagedUpload", "payload"),  # uploads between preview and confirmation
]


@dataclass
class RotationResult:
    total: int = 0
    rotated: int = 0
    already_current: int = 0
    key_id: str = ""
    columns: dict = field(default_factory=dict)


def rotate_secrets(batch_size: int = BATCH_SIZE) -> RotationResult:
    """Re-encrypt every secret column under the newest key; audited once with the counts."""
    columns = [(apps.get_model(label), name) for label, name in SECRET_COLUMNS]
    undecryptable = [
        f"{model.__name__} row id {pk}"
        for model, name in columns
        for pk in _undecryptable(model, name)
    ]
    if undecryptable:
        shown = ", ".join(undecryptable[:20])
        more = f" and {len(undecryptable) - 20} more" if len(undecryptable) > 20 else ""
        raise keyring.KeyringError(
            f"No key of CERTCONSOLE_KEYRING decrypts {shown}{more}; nothing was re-encrypted. "
            "Put the key that encrypted them back in the ring, or delete those rows."
        )
    newest = Fernet(settings.CERTCONSOLE_KEYRING[0].encode())
    result = RotationResult(key_id=keyring.primary_key_id())
    for model, name in columns:
        counts = {"total": 0, "rotated": 0}
        for batch in _batches(model, name, batch_size):
            with transaction.atomic():
                for pk, token in batch:
                    counts["total"] += 1
                    if not _opens(newest, token):
                        # Compare-and-set: a row changed meanwhile is left for the next run.
                        counts["rotated"] += model.objects.filter(pk=pk, **{name: token}).update(
                            **{name: keyring.rotate(token)}
                        )
        result.columns[f"{model._meta.label}.{name}"] = counts
        result.total += counts["total"]
        result.rotated += counts["rotated"]
    result.already_current = result.total - result.rotated
    record(None, "keyring.rotate", None, **asdict(result))
    return result


def _batches(model, name: str, batch_size: int):
    last = 0
    while True:
        rows = list(
            model.objects.filter(pk__gt=last).order_by("pk").values_list("pk", name)[:batch_size]
        )
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def _undecryptable(model, name: str):
    ring = keyring.ring()
    for batch in _batches(model, name, BATCH_SIZE):
        for pk, token in batch:
            try:
                ring.decrypt(token.encode("ascii"))
            except (InvalidToken, UnicodeEncodeError):
                yield pk


def _opens(fernet: Fernet, token: str) -> bool:
    try:
        fernet.decrypt(token.encode("ascii"))
    except InvalidToken:
        return False
    return True


class Command(BaseCommand):
    help = "Re-encrypt every stored secret under the newest keyring key (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options):
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        with cli_context():
            try:
                result = rotate_secrets(options["batch_size"])
            except keyring.KeyringError as exc:
                raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(asdict(result)))
            return
        self.stdout.write(
            f"Re-encrypted {result.rotated} of {result.total} secrets under key {result.key_id}; "
            f"{result.already_current} already used it."
        )
        for column, counts in result.columns.items():
            self.stdout.write(f"  {column}: {counts['rotated']} of {counts['total']}")
