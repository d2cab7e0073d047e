"""{% can "perm" obj as name %}: whether the signed-in user holds a project permission on obj."""

from django import template

register = template.Library()


@register.simple_tag(takes_context=True)
def can(context, perm: str, obj) -> bool:
    request = context.get("request")
    user = getattr(request, "user", None) or context.get("user")
    return bool(user is not None and user.is_authenticated and user.has_perm(perm, obj))
