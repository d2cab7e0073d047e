"""Manual target: nothing is pushed; a person installs the files and the live check confirms."""

from dataclasses import dataclass

from deployments.drivers._files import OptionReader
from deployments.drivers.base import Bundle, Driver, PushResult


@dataclass(frozen=True)
class ManualOptions:
    instructions: str | None = None
    # Where the files go on the server, when known: shown to the person installing them.
    fullchain_path: str | None = None
    key_path: str | None = None


class ManualDriver(Driver):
    """Shows exactly what to install where; the binding is deployed when the probe sees it."""

    kind = "manual"
    label = "Manual"
    needs_private_key = False  # the console never sends anything
    Options = ManualOptions

    @classmethod
    def parse_options(cls, options: dict | None) -> ManualOptions:
        reader = OptionReader(options, cls.kind)
        parsed = ManualOptions(
            instructions=reader.string("instructions", required=False),
            fullchain_path=reader.path("fullchain_path", required=False),
            key_path=reader.path("key_path", required=False),
        )
        reader.finish()
        return parsed

    def describe(self) -> str:
        return f"{self.label}: a person installs the files; the live check confirms"

    def push(self, bundle: Bundle) -> PushResult:
        o = self.options
        files = [
            {
                "file": "fullchain.pem",
                "contents": "the certificate followed by its chain (download: PEM full chain)",
                "install_at": o.fullchain_path,
                "mode": "0644",
            },
            {
                "file": "privkey.pem",
                "contents": "the private key (download needs the key export permission)",
                "install_at": o.key_path,
                "mode": "0600",
            },
        ]
        details = {
            "files": files,
            "expect_sha256": bundle.sha256,
            "certificate": bundle.name,
            "instructions": o.instructions,
        }
        return PushResult(
            summary=(
                f"Install fullchain.pem and privkey.pem for {bundle.name}"
                + (f" ({o.fullchain_path}, {o.key_path})" if o.fullchain_path else "")
                + ", reload the server, then the live check marks it deployed "
                f"when it sees SHA-256 {bundle.sha256}."
            ),
            details=details,
            awaiting_live_check=True,
        )
