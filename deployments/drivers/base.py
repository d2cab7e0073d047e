"""The one interface every deployment target kind implements.

Drivers are framework-free: they take a `Bundle` (bytes) and their own options
(validated from the Target row's JSON by a per-driver dataclass) plus decrypted
credentials, and they never touch the ORM. The rollout (deployments/rollout.py)
pushes, verifies with a live handshake (deployments/tlsprobe.py) and, on failure,
pushes the previous bundle again through the same driver.
"""

from dataclasses import dataclass, field


class DriverError(Exception):
    """A push failed. permanent=True means retrying the same push cannot help."""

    def __init__(self, message: str, *, permanent: bool = False, details: dict | None = None):
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        # What the failed push did (commands, exit codes, restored files), like PushResult.details.
        self.details = details or {}


@dataclass(frozen=True)
class Bundle:
    """What a target receives: PEM bytes of the leaf, its chain, and the key (None if withheld)."""

    name: str  # certificate name, for file names and messages
    sha256: str  # the leaf's SHA-256, what verification expects to see served
    cert_pem: bytes
    chain_pem: bytes
    key_pem: bytes | None
    # Webhook targets: a short-lived, single-use URL where the receiver fetches this bundle.
    fetch_url: str | None = None

    @property
    def fullchain_pem(self) -> bytes:
        return self.cert_pem + self.chain_pem

    @property
    def combined_pem(self) -> bytes:
        """Leaf + chain + key in one file (HAProxy's format)."""
        return self.fullchain_pem + (self.key_pem or b"")


@dataclass
class PushResult:
    """What a push did: a short human summary plus details worth keeping on the record."""

    summary: str
    details: dict = field(default_factory=dict)
    # For a manual target nothing is pushed: the binding is done when the live check sees it.
    awaiting_live_check: bool = False


class Driver:
    """Base class: subclasses set `kind`, `label`, `Options` and implement push()."""

    kind: str = ""
    label: str = ""
    needs_private_key: bool = True
    # Names of the secrets this kind reads from its decrypted credentials (for forms).
    credential_fields: tuple[str, ...] = ()
    Options: type = dict  # a dataclass; from_options() builds it and reports bad fields

    def __init__(self, options: dict, credentials: dict | None = None):
        self.options = self.parse_options(options)
        self.credentials = credentials or {}

    @classmethod
    def parse_options(cls, options: dict):
        """Validate JSON options; raise DriverError(permanent=True) naming the bad field."""
        raise NotImplementedError

    def push(self, bundle: Bundle) -> PushResult:
        """Install bundle on the target and make the server use it (reload)."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line for the UI: where this target puts certificates."""
        return self.label
