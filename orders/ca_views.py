"""Private CA pages (list, create, detail, profiles, downloads), the public CRL, and the
CSR download and certificate upload of external CA orders."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from certconsole import exports
from certconsole.access.permissions import get_object_for_user, require
from inventory.pki.errors import PkiError
from orders import issuance, private_ca
from orders.ca_forms import (
    CaForm,
    CertificateUploadForm,
    ProfileForm,
    SignedCaForm,
    TruststoreForm,
)
from orders.issuance import OrderError
from orders.models import CaRevocation, CertificateAuthority, Order
from orders.views import _project_or_404

DOWNLOAD_FORMATS = ("pem", "der", "bundle", "jks")


@require_GET
@login_required
def ca_list(request: HttpRequest) -> HttpResponse:
    project = _project_or_404(request)
    require(request.user, "issuer.view", project)
    cas = (
        CertificateAuthority.objects.filter(project=project)
        .select_related("parent")
        .annotate(profile_count=Count("profiles", distinct=True))
    )
    context = {
        "project": project,
        "cas": cas,
        "can_manage": request.user.has_perm("issuer.manage", project),
    }
    return render(request, "orders/ca_list.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def ca_create(request: HttpRequest) -> HttpResponse:
    project = _project_or_404(request)
    require(request.user, "issuer.manage", project)
    form = CaForm(request.POST or None, project=project)
    if request.method == "POST" and form.is_valid():
        try:
            ca = private_ca.create_ca(request.user, project, **form.ca_kwargs())
        except PkiError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"CA “{ca.name}” created.")
            return redirect(ca)
    status = 400 if form.errors else 200
    return render(request, "orders/ca_form.html", {"form": form, "project": project}, status=status)


@require_GET
@login_required
def ca_detail(request: HttpRequest, pk: int) -> HttpResponse:
    ca = get_object_for_user(request, CertificateAuthority, "issuer.view", pk=pk)
    issued = Order.objects.filter(ca=ca, state=Order.State.ISSUED)
    context = {
        "ca": ca,
        "cert": ca.cert(),
        "profiles": ca.profiles.all(),
        "issued_count": issued.count(),
        "revocations": CaRevocation.objects.filter(ca=ca).select_related("version__certificate"),
        "can_manage": request.user.has_perm("issuer.manage", ca),
        "signed_form": SignedCaForm(),
        "truststore_form": TruststoreForm(),
        "children": ca.children.all(),
    }
    return render(request, "orders/ca_detail.html", context)


@require_http_methods(["GET", "POST"])
@login_required
def profile_create(request: HttpRequest, pk: int) -> HttpResponse:
    ca = get_object_for_user(request, CertificateAuthority, "issuer.manage", pk=pk)
    form = ProfileForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            profile = private_ca.add_profile(request.user, ca, **form.profile_kwargs())
        except PkiError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Profile “{profile.name}” added to {ca.name}.")
            return redirect(ca)
    status = 400 if form.errors else 200
    return render(request, "orders/ca_profile_form.html", {"form": form, "ca": ca}, status=status)


@require_GET
@login_required
def ca_csr(request: HttpRequest, pk: int) -> HttpResponse:
    ca = get_object_for_user(request, CertificateAuthority, "issuer.view", pk=pk)
    if not ca.csr_pem:
        raise Http404("This CA has no CSR.")
    return exports.attachment(ca.csr_pem.encode(), "application/pkcs10", f"{ca.name}.csr")


@require_POST
@login_required
def ca_upload_signed(request: HttpRequest, pk: int) -> HttpResponse:
    ca = get_object_for_user(request, CertificateAuthority, "issuer.manage", pk=pk)
    form = SignedCaForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, "Choose the signed certificate file.")
        return redirect(ca)
    chain = form.cleaned_data["chain"]
    try:
        private_ca.accept_signed(
            request.user,
            ca,
            form.cleaned_data["certificate"].read(),
            chain.read() if chain else b"",
        )
    except PkiError as exc:
        messages.error(request, f"Not accepted: {exc}")
    else:
        messages.success(request, f"{ca.name} is active: it can issue certificates now.")
    return redirect(ca)


@require_GET
@login_required
def ca_download(request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
    ca = get_object_for_user(request, CertificateAuthority, "issuer.view", pk=pk)
    if fmt not in DOWNLOAD_FORMATS or not ca.is_active:
        raise Http404("No such download.")
    form = TruststoreForm(request.GET)
    password = form.cleaned_data["password"] if form.is_valid() else ""
    body, content_type, filename = private_ca.download(ca, fmt, password)
    return exports.attachment(body, content_type, filename)


@require_GET
def ca_crl(request: HttpRequest, pk: int, ext: str) -> HttpResponse:
    """The CA's current CRL, public like every CRL (clients fetch it without signing in)."""
    ca = CertificateAuthority.objects.filter(pk=pk, status="active").first()
    if ca is None:
        raise Http404("No such CA.")
    crl = private_ca.current_crl(ca)
    if ext == "pem":
        return HttpResponse(private_ca.core.crl_pem(crl), content_type="application/x-pem-file")
    return HttpResponse(private_ca.core.crl_der(crl), content_type="application/pkix-crl")


@require_GET
@login_required
def order_csr(request: HttpRequest, pk: int) -> HttpResponse:
    order = get_object_for_user(request, Order, "order.view", pk=pk)
    if not order.csr_pem:
        raise Http404("This order has no CSR.")
    return exports.attachment(order.csr_pem.encode(), "application/pkcs10", f"order-{order.pk}.csr")


@require_POST
@login_required
def order_upload_certificate(request: HttpRequest, pk: int) -> HttpResponse:
    order = get_object_for_user(request, Order, "order.create", pk=pk)
    form = CertificateUploadForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, "Choose the certificate file the CA sent you.")
        return redirect(order)
    upload = form.cleaned_data["file"]
    password = form.cleaned_data["password"].encode() or None
    try:
        issuance.attach_external_certificate(
            request.user, order, upload.name, upload.read(), password
        )
    except OrderError as exc:
        messages.error(request, f"Not accepted: {exc}")
    else:
        messages.success(request, f"Order #{order.pk}: the certificate is in the inventory.")
    return redirect(order)


urlpatterns = [
    path("cas/", ca_list, name="ca-list"),
    path("cas/new/", ca_create, name="ca-create"),
    path("cas/<int:pk>/", ca_detail, name="ca-detail"),
    path("cas/<int:pk>/profiles/new/", profile_create, name="ca-profile-create"),
    path("cas/<int:pk>/csr/", ca_csr, name="ca-csr"),
    path("cas/<int:pk>/signed/", ca_upload_signed, name="ca-upload-signed"),
    path("cas/<int:pk>/download/<str:fmt>/", ca_download, name="ca-download"),
    path("<int:pk>/csr/", order_csr, name="order-csr"),
    path("<int:pk>/certificate/", order_upload_certificate, name="order-upload-certificate"),
]
