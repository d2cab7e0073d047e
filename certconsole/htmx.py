"""Small helpers for HTMX partial responses."""


def is_partial(request) -> bool:
    """True when HTMX asked for a fragment (not a boosted full-page navigation)."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.boosted


def template_for(request, template: str, partial: str) -> str:
    """The full template, or its named partial when HTMX asks for a fragment."""
    return f"{template}#{partial}" if is_partial(request) else template
