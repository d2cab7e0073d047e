"""Uploads held between the preview and the confirmation: encrypted, single use, 30 minutes.

The files may contain private keys and the password opens them, so the whole
payload is encrypted with the keyring; the confirmation re-plans from these
bytes rather than trusting anything the browser sends back.
"""

import base64
import json
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.utils import timezone

from certconsole import keyring
from inventory.models import StagedUpload

LIFETIME = timedelta(minutes=30)


@dataclass
class StagedFile:
    """One uploaded file: its bytes, or (data None) why the preview already rejected it."""

    name: str
    data: bytes | None
    error: str | None = None


@dataclass
class Staged:
    """What the user previewed and may now import."""

    project: object
    files: list[StagedFile]
    password: bytes | None = None
    options: dict = field(default_factory=dict)


def stage(user, project, files: list[StagedFile], password: bytes | None, options: dict) -> str:
    """Keep the upload for the confirmation; returns the token the confirm form posts."""
    purge_expired()
    payload = {
        "files": [
            {
                "name": f.name,
                "data": None if f.data is None else base64.b64encode(f.data).decode("ascii"),
                "error": f.error,
            }
            for f in files
        ],
        "password": None if password is None else base64.b64encode(password).decode("ascii"),
        "options": options,
    }
    row = StagedUpload.objects.create(
        token=uuid.uuid4(),
        project=project,
        user=user,
        payload=keyring.encrypt(json.dumps(payload).encode("utf-8")),
    )
    return str(row.token)


def claim(user, token: str) -> Staged | None:
    """The staged upload for token, removed so it imports once; None if unknown or expired.

    Only the user who uploaded may claim it.
    """
    try:
        token = uuid.UUID(str(token))
    except ValueError:
        return None
    fresh = StagedUpload.objects.filter(created_at__gt=timezone.now() - LIFETIME)
    row = fresh.select_related("project").filter(token=token, user=user).first()
    if row is None:
        return None
    deleted, _ = StagedUpload.objects.filter(pk=row.pk).delete()
    if not deleted:  # a second click got here first
        return None
    try:
        payload = json.loads(keyring.decrypt(row.payload))
    except keyring.KeyringError:
        return None
    password = payload["password"]
    return Staged(
        project=row.project,
        files=[
            StagedFile(
                f["name"],
                None if f["data"] is None else base64.b64decode(f["data"]),
                f["error"],
            )
            for f in payload["files"]
        ],
        password=None if password is None else base64.b64decode(password),
        options=payload["options"],
    )


def purge_expired(now=None) -> int:
    """Delete staged uploads nobody confirmed in time; returns how many."""
    cutoff = (now or timezone.now()) - LIFETIME
    deleted, _ = StagedUpload.objects.filter(created_at__lte=cutoff).delete()
    return deleted
