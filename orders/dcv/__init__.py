"""Challenge solvers: publish and check DNS-01 TXT records (no Django models here)."""

from typing import Protocol


class DcvError(Exception):
    """Publishing or checking a challenge failed; `permanent` says whether a retry can help."""

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.message = message
        self.permanent = permanent


class TxtPublisher(Protocol):
    """What every automatic DNS-01 provider offers (RFC 2136, lexicon)."""

    def present(self, fqdn: str, value: str) -> None: ...

    def cleanup(self, fqdn: str, value: str) -> None: ...


__all__ = ["DcvError", "TxtPublisher"]
