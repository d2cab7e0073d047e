"""Development secrets generated once into var/ (mode 0600), never used when DEBUG is off."""

import os
import secrets
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet


def dev_secret(path: Path, kind: str) -> str:
    """Return the secret stored at path, creating it first if missing.

    The file is written beside its final name and linked into place, so processes
    starting together (web, worker, scheduler) all end up with the same value.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        value = Fernet.generate_key().decode() if kind == "fernet" else secrets.token_urlsafe(50)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret-")  # mode 0600
        with os.fdopen(fd, "w") as handle:
            handle.write(value + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return path.read_text().strip()
