"""`{% has_perm "certificate.export_key" cert as can_export %}` in templates."""

from django import template

register = template.Library()


@register.simple_tag(takes_context=True)
def has_perm(context, perm: str, obj) -> bool:
    """True when the request's user holds perm on obj (the same check the views make)."""
    request = context.get("request")
    user = getattr(request, "user", None) or context.get("user")
    return bool(user is not None and user.has_perm(perm, obj))
