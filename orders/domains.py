"""Domain names as a user types them → the ASCII names an order asks for, or what is wrong."""

import functools
import re

import idna
from publicsuffixlist import PublicSuffixList

MAX_NAMES = 100
_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_SEPARATORS = re.compile(r"[,;\r\n]+")


@functools.cache
def _psl() -> PublicSuffixList:
    # The list ships inside the package: no download at run time.
    return PublicSuffixList()


def requires_dns01(name: str) -> bool:
    """Wildcards can only be validated with DNS-01."""
    return name.startswith("*.")


def to_unicode(name: str) -> str:
    """The name for display (`xn--bcher-kva.example` → `bücher.example`)."""
    try:
        return idna.decode(name.removeprefix("*.")) if "xn--" in name else name
    except idna.IDNAError:
        return name


def display_name(name: str) -> str:
    shown = to_unicode(name)
    return f"*.{shown}" if requires_dns01(name) and not shown.startswith("*.") else shown


def _ascii(name: str) -> str:
    if name.isascii():
        return name.lower()
    try:
        return idna.encode(name, uts46=True).decode()
    except idna.IDNAError as exc:
        raise ValueError(f"not a valid internationalised domain name ({exc})") from exc


def normalize_name(raw: str) -> str:
    """One name in its ASCII (punycode) form, or ValueError saying what is wrong."""
    name = raw.strip()
    if any(c.isspace() for c in name):
        raise ValueError("spaces are not allowed in a domain name")
    name = name.removesuffix(".")
    if not name:
        raise ValueError("the name is empty")
    wildcard = name.startswith("*.")
    base = name[2:] if wildcard else name
    if "*" in base:
        raise ValueError("a wildcard “*” may only be the whole leftmost label, as in *.example.com")
    if "://" in base or "/" in base or "@" in base or ":" in base:
        raise ValueError("enter a domain name only, without scheme, path, port or user")
    if "_" in base:
        raise ValueError("underscores are not allowed in certificate names")
    base = _ascii(base)
    labels = base.split(".")
    if any(label == "" for label in labels):
        raise ValueError("the name has an empty label (two dots in a row, or a leading dot)")
    if len(labels) == 1:
        raise ValueError("a single-label name cannot get a certificate; use a full domain name")
    if labels[-1].isdigit() or all(label.isdigit() for label in labels):
        raise ValueError("IP addresses are not supported; enter a domain name")
    for label in labels:
        if len(label) > 63:
            raise ValueError(f"the label “{label[:20]}…” is longer than 63 characters")
        if not _LABEL.match(label):
            raise ValueError(
                f"the label “{label}” may contain only letters, digits and inner hyphens"
            )
        if label[2:4] == "--":
            if not label.startswith("xn--"):
                raise ValueError(f"the label “{label}” has “--” in 3rd and 4th position")
            try:
                idna.decode(label)
            except idna.IDNAError as exc:
                raise ValueError(f"the label “{label}” is not valid punycode") from exc
    if len(base) > 253:
        raise ValueError("the name is longer than 253 characters")
    if _psl().is_public(base):
        if wildcard:
            raise ValueError(f"a wildcard directly under the public suffix “{base}” is not allowed")
        raise ValueError(f"“{base}” is a public suffix; name a domain registered under it")
    return f"*.{base}" if wildcard else base


def collect_names(entries, normalize) -> tuple[list[str], list[str]]:
    """Normalise each non-empty entry: (names, duplicates merged and order kept; one error each)."""
    names: list[str] = []
    errors: list[str] = []
    for entry in entries:
        if not entry or not entry.strip():
            continue
        try:
            name = normalize(entry)
        except ValueError as exc:
            errors.append(f"“{entry.strip()}”: {exc}")
            continue
        if name not in names:
            names.append(name)
    return names, errors


def normalize_domains(
    raw: list[str] | str, *, max_names: int = MAX_NAMES
) -> tuple[list[str], list[str]]:
    """Check and normalise the names of an order; one error message per bad name.

    A string is split on newlines, commas and semicolons. Duplicates (any case, Unicode or
    punycode) are merged, the order is kept.
    """
    entries = _SEPARATORS.split(raw) if isinstance(raw, str) else list(raw)
    names, errors = collect_names(entries, normalize_name)
    if len(names) > max_names:
        errors.append(f"{len(names)} names given; an order can have at most {max_names}")
    return names, errors
