"""The API tokens page: create (the secret is shown once), see last use, revoke."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from api.forms import FetchTokenForm, RevokeForm, TokenForm
from api.models import ApiToken, FetchToken
from certconsole.access.backends import project_permissions
from certconsole.access.permissions import get_object_for_user
from inventory.models import Certificate

app_name = "tokens"


def _page(request, status=200, **context) -> HttpResponse:
    user = request.user
    context.setdefault("form", TokenForm(user=user))
    context.setdefault("fetch_form", FetchTokenForm(user=user))
    context["tokens"] = ApiToken.objects.filter(user=user).select_related("project")
    context["fetch_tokens"] = FetchToken.objects.filter(created_by=user).select_related(
        "project", "certificate"
    )
    return render(request, "api/token_list.html", context, status=status)


@never_cache
@require_GET
@login_required
def token_list(request: HttpRequest) -> HttpResponse:
    return _page(request)


@never_cache
@require_POST
@login_required
def token_create(request: HttpRequest) -> HttpResponse:
    form = TokenForm(request.POST, user=request.user)
    if not form.is_valid():
        return _page(request, 400, form=form)
    data = form.cleaned_data
    project = data["project"]
    certificates = list(Certificate.objects.filter(project=project, name__in=data["certificates"]))
    missing = set(data["certificates"]) - {c.name for c in certificates}
    if missing:
        form.add_error("certificates", f"No such certificate here: {', '.join(sorted(missing))}.")
        return _page(request, 400, form=form)
    usable = None if request.user.is_superuser else project_permissions(request.user, project.pk)
    try:
        token, secret = ApiToken.issue(
            request.user,
            request.user,
            project,
            name=data["name"],
            role=data["role"],
            certificates=certificates,
            expires_days=data["expires_days"],
            read_only=data["read_only"],
            metrics=data["metrics"],
            rate_limit=data["rate_limit"],
            usable=usable,
        )
    except ValidationError as exc:
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
        return _page(request, 400, form=form)
    return _page(request, 201, created=token, secret=secret)


@require_POST
@login_required
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    form = RevokeForm(request.POST)
    token.revoke(request.user, form.data.get("reason", "")[:500])
    messages.success(request, f"Token {token.prefix}… revoked.")
    return redirect("tokens:token-list")


@never_cache
@require_POST
@login_required
def fetch_token_create(request: HttpRequest) -> HttpResponse:
    form = FetchTokenForm(request.POST, user=request.user)
    if not form.is_valid():
        return _page(request, 400, fetch_form=form)
    data = form.cleaned_data
    certificate = get_object_for_user(
        request,
        Certificate,
        "certificate.export_key",
        project=data["project"],
        name=data["certificate"],
    )
    token, secret = FetchToken.issue(
        request.user,
        certificate,
        name=data["name"],
        fmt=data["format"],
        expires_days=data["expires_days"],
    )
    return _page(request, 201, created_fetch=token, fetch_secret=secret)


@require_POST
@login_required
def fetch_token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_for_user(request, FetchToken.objects.all(), "certificate.export_key", pk=pk)
    token.revoke(request.user, RevokeForm(request.POST).data.get("reason", "")[:500])
    messages.success(request, f"Fetch token {token.prefix}… revoked.")
    return redirect("tokens:token-list")


urlpatterns = [
    path("", token_list, name="token-list"),
    path("new/", token_create, name="token-create"),
    path("<int:pk>/revoke/", token_revoke, name="token-revoke"),
    path("fetch/new/", fetch_token_create, name="fetch-token-create"),
    path("fetch/<int:pk>/revoke/", fetch_token_revoke, name="fetch-token-revoke"),
]
