"""Orders, their live timeline, approvals, issuers; renew and revoke on a certificate."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import path
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseStopPolling

from certconsole.access.current import current_project
from certconsole.access.permissions import get_object_for_user, require
from certconsole.htmx import is_partial
from inventory.models import Certificate, CertificateVersion
from orders import issuance, renewal
from orders.acme.errors import AcmeError
from orders.ca_forms import CertificateUploadForm
from orders.forms import (
    AcmeAccountForm,
    DnsProviderForm,
    OrderForm,
    OrderPolicyForm,
    ReasonForm,
    RenewalPolicyForm,
    RevokeForm,
)
from orders.issuance import OrderError
from orders.models import AcmeAccount, Authorization, DnsProvider, Order, OrderPolicy

LIST_SIZE = 200


def _project_or_404(request: HttpRequest):
    project = current_project(request)
    if project is None:
        raise Http404("You belong to no project.")
    return project


@require_GET
@login_required
def order_list(request: HttpRequest) -> HttpResponse:
    orders = (
        Order.objects.visible_to(request.user, "order.view")
        .select_related("project", "account", "requested_by")
        .order_by("-created_at")[:LIST_SIZE]
    )
    return render(request, "orders/order_list.html", {"orders": orders})


@require_http_methods(["GET", "POST"])
@login_required
def order_create(request: HttpRequest) -> HttpResponse:
    project = _project_or_404(request)
    require(request.user, "order.create", project)
    form = OrderForm(request.POST or None, project=project)
    if request.method == "POST" and form.is_valid():
        try:
            order = issuance.create_order(request.user, project, **form.order_kwargs())
        except OrderError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Order #{order.pk} created.")
            return redirect(order)
    status = 400 if form.errors else 200
    context = {"form": form, "project": project}
    return render(request, "orders/order_form.html", context, status=status)


def _detail_context(request: HttpRequest, order: Order) -> dict:
    authorizations = order.authorizations.select_related("dns_provider").prefetch_related(
        "challenges"
    )
    user = request.user
    return {
        "order": order,
        "authorizations": authorizations,
        "events": order.events.all(),
        "can_approve": user.has_perm("order.approve", order) and user.pk != order.requested_by_id,
        "can_cancel": user.has_perm("order.cancel", order),
        "can_act": user.has_perm("order.create", order),
        "reason_form": ReasonForm(),
        "upload_form": CertificateUploadForm(),
    }


@require_GET
@login_required
def order_detail(request: HttpRequest, pk: int) -> HttpResponse:
    order = get_object_for_user(request, Order, "order.view", pk=pk)
    context = _detail_context(request, order)
    if is_partial(request):
        html = render_to_string("orders/order_detail.html#timeline", context, request)
        return HttpResponseStopPolling(html) if order.is_final else HttpResponse(html)
    return render(request, "orders/order_detail.html", context)


def _reason_or_error(request: HttpRequest, order: Order) -> str | None:
    form = ReasonForm(request.POST)
    if form.is_valid():
        return form.cleaned_data["reason"]
    messages.error(request, "Give a reason: it is recorded in the audit log.")
    return None


def _act(request: HttpRequest, pk: int, perm: str, action) -> HttpResponse:
    order = get_object_for_user(request, Order, perm, pk=pk)
    reason = _reason_or_error(request, order)
    if reason is not None:
        try:
            action(request.user, order, reason)
        except OrderError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Order #{order.pk}: {order.get_state_display()}.")
    return redirect(order)


@require_POST
@login_required
def order_approve(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, "order.approve", issuance.approve)


@require_POST
@login_required
def order_reject(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, "order.approve", issuance.reject)


@require_POST
@login_required
def order_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    return _act(request, pk, "order.cancel", issuance.cancel)


def _authorization(request: HttpRequest, pk: int, perm: str) -> Authorization:
    queryset = Authorization.objects.select_related("order")
    order_id = queryset.filter(pk=pk).values_list("order_id", flat=True).first()
    get_object_for_user(request, Order, perm, pk=order_id or 0)
    return queryset.get(pk=pk)


@require_POST
@login_required
def authorization_check_dns(request: HttpRequest, pk: int) -> HttpResponse:
    authz = _authorization(request, pk, "order.view")
    try:
        found = issuance.check_dns(request.user, authz)
    except OrderError as exc:
        messages.error(request, str(exc))
    else:
        word = "found" if found["ok"] else "not found yet"
        messages.info(request, f"{authz}: the TXT record is {word}.")
    return redirect(authz.order)


@require_POST
@login_required
def authorization_submit(request: HttpRequest, pk: int) -> HttpResponse:
    authz = _authorization(request, pk, "order.create")
    try:
        issuance.submit_challenge(request.user, authz)
    except OrderError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{authz}: sent to the CA for validation.")
    return redirect(authz.order)


@require_GET
@login_required
def issuer_list(request: HttpRequest) -> HttpResponse:
    project = _project_or_404(request)
    require(request.user, "issuer.view", project)
    context = {
        "project": project,
        "accounts": AcmeAccount.objects.filter(project=project),
        "providers": DnsProvider.objects.filter(project=project),
        "policy_form": OrderPolicyForm(instance=OrderPolicy.for_project(project)),
        "can_manage": request.user.has_perm("issuer.manage", project),
        "can_set_policy": request.user.has_perm("project.manage", project),
    }
    return render(request, "orders/issuer_list.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def account_create(request: HttpRequest) -> HttpResponse:
    project = _project_or_404(request)
    require(request.user, "issuer.manage", project)
    form = AcmeAccountForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            AcmeAccount.register(
                request.user,
                project,
                name=data["name"],
                directory_url=data["directory_url"],
                email=data["email"],
                agree_tos=data["agree_tos"],
                ca_bundle=data["ca_bundle"],
                eab_kid=data["eab_kid"],
                eab_hmac=data["eab_hmac"],
            )
        except (AcmeError, ValueError) as exc:
            form.add_error(None, f"The CA refused the account: {exc}")
        else:
            messages.success(request, f"ACME account “{data['name']}” registered.")
            return redirect("orders:issuer-list")
    status = 400 if form.errors else 200
    return render(request, "orders/account_form.html", {"form": form}, status=status)


@require_http_methods(["GET", "POST"])
@login_required
def dns_provider_create(request: HttpRequest) -> HttpResponse:
    project = _project_or_404(request)
    require(request.user, "issuer.manage", project)
    form = DnsProviderForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            DnsProvider.create(request.user, project, **form.cleaned_data)
        except ValueError as exc:
            form.add_error("options", str(exc))
        else:
            messages.success(request, "DNS provider saved.")
            return redirect("orders:issuer-list")
    status = 400 if form.errors else 200
    return render(request, "orders/dns_provider_form.html", {"form": form}, status=status)


@require_POST
@login_required
def order_policy(request: HttpRequest) -> HttpResponse:
    from certconsole.audit import record

    project = _project_or_404(request)
    require(request.user, "project.manage", project)
    form = OrderPolicyForm(request.POST, instance=OrderPolicy.for_project(project))
    if form.is_valid():
        policy = form.save()
        record(request.user, "order.policy", project, require_approval=policy.require_approval)
        messages.success(request, "Ordering policy saved.")
    return redirect("orders:issuer-list")


@require_POST
@login_required
def certificate_renew(request: HttpRequest, pk: int) -> HttpResponse:
    certificate = get_object_for_user(request, Certificate, "certificate.renew", pk=pk)
    try:
        order = renewal.start_renewal(request.user, certificate, reason="Renew now")
    except OrderError as exc:
        messages.error(request, str(exc))
        return redirect(certificate)
    messages.success(request, f"Renewal order #{order.pk} started.")
    return redirect(order)


@require_POST
@login_required
def version_revoke(request: HttpRequest, pk: int, sha256: str) -> HttpResponse:
    certificate = get_object_for_user(request, Certificate, "certificate.revoke", pk=pk)
    version = CertificateVersion.objects.filter(certificate=certificate, sha256=sha256).first()
    if version is None:
        raise Http404("No such version.")
    form = RevokeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a reason code and give a reason for the audit log.")
        return redirect(certificate)
    try:
        issuance.revoke_version(
            request.user, version, form.cleaned_data["reason_code"], form.cleaned_data["reason"]
        )
    except (OrderError, AcmeError) as exc:
        messages.error(request, f"Not revoked: {exc}")
    else:
        messages.success(request, f"Version {version.serial[:16]}… revoked.")
    return redirect(certificate)


@require_http_methods(["GET", "POST"])
@login_required
def renewal_policy(request: HttpRequest, pk: int) -> HttpResponse:
    certificate = get_object_for_user(request, Certificate, "certificate.change", pk=pk)
    policy = renewal.policy_for(certificate)
    form = RenewalPolicyForm(request.POST or None, instance=policy)
    if request.method == "POST" and form.is_valid():
        if form.save_as(request.user):
            messages.success(request, "Renewal settings saved.")
        return redirect(certificate)
    status = 400 if request.method == "POST" else 200
    context = {"form": form, "cert": certificate}
    return render(request, "orders/renewal_policy.html", context, status=status)


app_name = "orders"
urlpatterns = [
    path("", order_list, name="order-list"),
    path("new/", order_create, name="order-create"),
    path("<int:pk>/", order_detail, name="order-detail"),
    path("<int:pk>/approve/", order_approve, name="order-approve"),
    path("<int:pk>/reject/", order_reject, name="order-reject"),
    path("<int:pk>/cancel/", order_cancel, name="order-cancel"),
    path("authorizations/<int:pk>/check-dns/", authorization_check_dns, name="authz-check-dns"),
    path("authorizations/<int:pk>/submit/", authorization_submit, name="authz-submit"),
    path("issuers/", issuer_list, name="issuer-list"),
    path("issuers/acme/new/", account_create, name="account-create"),
    path("issuers/dns/new/", dns_provider_create, name="dns-provider-create"),
    path("issuers/policy/", order_policy, name="order-policy"),
    path("certificates/<int:pk>/renew/", certificate_renew, name="certificate-renew"),
    path("certificates/<int:pk>/renewal/", renewal_policy, name="renewal-policy"),
    path(
        "certificates/<int:pk>/versions/<str:sha256>/revoke/",
        version_revoke,
        name="version-revoke",
    ),
]
