"""nginx on this host: write the files atomically, `nginx -t`, reload; restore on any failure."""

from dataclasses import dataclass

from deployments.drivers._files import (
    CommandRun,
    OptionReader,
    atomic_write,
    command_text,
    file_error,
    read_previous,
    restore_all,
    run_command,
)
from deployments.drivers.base import Bundle, Driver, DriverError, PushResult

CERT_MODE = 0o644
KEY_MODE = 0o600


@dataclass(frozen=True)
class NginxLocalOptions:
    fullchain_path: str
    key_path: str
    test_command: list[str]
    reload_command: list[str]
    timeout: float = 30.0  # seconds for each command


class NginxLocalDriver(Driver):
    """Writes fullchain + key where nginx reads them, tests the config, reloads."""

    kind = "nginx_local"
    label = "nginx on this host"
    Options = NginxLocalOptions

    @classmethod
    def parse_options(cls, options: dict) -> NginxLocalOptions:
        reader = OptionReader(options, cls.kind)
        parsed = NginxLocalOptions(
            fullchain_path=reader.path("fullchain_path"),
            key_path=reader.path("key_path"),
            test_command=reader.command("test_command"),
            reload_command=reader.command("reload_command"),
            timeout=reader.number("timeout", default=30.0, low=1, high=600),
        )
        reader.finish()
        if parsed.fullchain_path == parsed.key_path:
            raise DriverError("key_path must differ from fullchain_path.", permanent=True)
        return parsed

    def describe(self) -> str:
        o = self.options
        return (
            f"{self.label}: {o.fullchain_path} + {o.key_path}, "
            f"tested with `{command_text(o.test_command)}`, "
            f"reloaded with `{command_text(o.reload_command)}`"
        )

    def push(self, bundle: Bundle) -> PushResult:
        o = self.options
        if bundle.key_pem is None:
            raise DriverError(
                f"The private key of {bundle.name} is not available; nginx needs it.",
                permanent=True,
            )
        files = [
            (o.fullchain_path, bundle.fullchain_pem, CERT_MODE),
            (o.key_path, bundle.key_pem, KEY_MODE),
        ]
        previous = [read_previous(path) for path, _, _ in files]
        details: dict = {
            "files": [
                {"path": path, "bytes": len(data), "mode": oct(mode), "existed": p.data is not None}
                for (path, data, mode), p in zip(files, previous, strict=True)
            ],
            "commands": [],
            "restored": False,
        }

        def fail(message: str, permanent: bool) -> DriverError:
            problems = restore_all(previous)
            details["restored"] = not problems
            if problems:
                message += " Restoring the previous files failed too: " + "; ".join(problems)
            return DriverError(message, permanent=permanent, details=details)

        for path, data, mode in files:
            try:
                atomic_write(path, data, mode)
            except OSError as exc:
                error = file_error(f"Cannot write {path}", exc)
                raise fail(error.message, error.permanent) from exc

        for step, args in (("test", o.test_command), ("reload", o.reload_command)):
            run: CommandRun = run_command(args, o.timeout)
            details["commands"].append(run.as_dict())
            if not run.ok:
                kept = "the previous files were put back" + (
                    " and nginx was not reloaded." if step == "test" else "."
                )
                # A timeout may pass on a retry; a failing config or command will not.
                raise fail(
                    f"The {step} command failed, {kept}\n{run.failure()}",
                    permanent=not run.timed_out,
                )

        return PushResult(
            summary=f"Wrote {o.fullchain_path} and {o.key_path}, config tested, nginx reloaded.",
            details=details,
        )
