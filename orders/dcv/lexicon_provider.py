"""DNS-01 through dns-lexicon's providers (Cloudflare, Route 53, Alibaba Cloud DNS, ...)."""

import argparse
import importlib

from lexicon.client import Client
from lexicon.config import ConfigResolver

from . import DcvError
from .dns_check import absolute

# Lexicon options that are not credentials and that we set ourselves.
_RESERVED = {"provider_name", "domain", "delegated", "ttl", "action", "type", "name", "content"}


def _discovery():
    # Lexicon's own provider discovery (what its Client validates against).
    return importlib.import_module("lexicon._private.discovery")


def available_providers() -> list[str]:
    """Every provider lexicon knows (some need an extra: `pip install dns-lexicon[name]`)."""
    return sorted(_discovery().find_providers())


def provider_options(provider_name: str) -> list[str]:
    """The credential/option names a provider accepts (`auth_token`, `zone_id`, ...)."""
    if provider_name not in _discovery().find_providers():
        raise DcvError(f"Unknown DNS provider {provider_name!r}", permanent=True)
    module = _discovery().load_provider_module(provider_name)
    parser = argparse.ArgumentParser(add_help=False)
    module.Provider.configure_parser(parser)
    return [action.dest for action in parser._actions if action.dest not in _RESERVED]


def _normalize(key: str) -> str:
    return key.strip().lstrip("-").replace("-", "_").lower()


class LexiconProvider:
    """Publishes TXT records through one lexicon provider with the given credentials."""

    def __init__(
        self, provider_name: str, credentials: dict[str, str], zone: str | None = None, ttl=60
    ):
        accepted = provider_options(provider_name)
        if not _discovery().find_providers()[provider_name]:
            raise DcvError(
                f"The {provider_name} provider needs extra packages: "
                f"pip install 'dns-lexicon[{provider_name}]'",
                permanent=True,
            )
        cleaned = {_normalize(k): v for k, v in credentials.items() if v not in (None, "")}
        unknown = sorted(set(cleaned) - set(accepted))
        if unknown:
            raise DcvError(
                f"{provider_name} does not take {', '.join(unknown)}; "
                f"it accepts {', '.join(accepted) or 'no options'}",
                permanent=True,
            )
        if not cleaned and any(o.startswith("auth_") for o in accepted):
            raise DcvError(f"{provider_name} needs credentials", permanent=True)
        self.provider_name = provider_name
        self.credentials = cleaned
        self.zone = zone.rstrip(".") if zone else None
        self.ttl = ttl

    def _config(self, fqdn: str) -> ConfigResolver:
        domain = self.zone or fqdn.rstrip(".")
        lexicon = {"provider_name": self.provider_name, "domain": domain, "ttl": self.ttl}
        if self.zone:
            lexicon["delegated"] = self.zone  # use our zone, not lexicon's guess from the PSL
        return ConfigResolver().with_dict({**lexicon, self.provider_name: self.credentials})

    def present(self, fqdn: str, value: str) -> None:
        self._run(fqdn, "create", value)

    def cleanup(self, fqdn: str, value: str) -> None:
        self._run(fqdn, "delete", value)

    def _run(self, fqdn: str, action: str, value: str) -> None:
        name = absolute(fqdn).to_text(omit_final_dot=True)
        try:
            with Client(self._config(name)) as operations:
                if action == "create":
                    operations.create_record("TXT", name, value)
                else:
                    operations.delete_record(rtype="TXT", name=name, content=value)
        except Exception as exc:  # providers raise requests, boto and their own errors
            raise DcvError(
                f"{self.provider_name} could not {action} the TXT record {name}: {exc}"
            ) from exc
