"""Downloads: public parts for every server, and the audited private key export."""

from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods

from certconsole import exports
from certconsole.access import mfa
from certconsole.access.permissions import get_object_for_user
from certconsole.access.reauth import (
    can_reauthenticate_with_password,
    mark_authenticated,
    needs_second_factor,
    note_failure,
    recently_authenticated,
)
from certconsole.audit import record
from inventory import exporting
from inventory.exporting import KEY_FORMATS, PUBLIC_FORMATS, ExportError, ExportFile
from inventory.forms_export import KeyExportForm
from inventory.models import Certificate, CertificateVersion


@require_GET
@login_required
def certificate_download(request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
    certificate = get_object_for_user(request, Certificate, "certificate.download", pk=pk)
    if fmt not in PUBLIC_FORMATS:
        raise Http404("No such download format.")
    version = _version(certificate, request)
    return _attachment(exporting.public_file(version, fmt))


@sensitive_post_parameters("passphrase", "passphrase_confirm", "password", "otp_token")
@never_cache
@require_http_methods(["GET", "POST"])
@login_required
def key_export(request: HttpRequest, pk: int) -> HttpResponse:
    certificate = get_object_for_user(request, Certificate, "certificate.export_key", pk=pk)
    version = _version(certificate, request)
    stale = not recently_authenticated(request)
    needs_code = needs_second_factor(request)
    if stale and not needs_code and not can_reauthenticate_with_password(request):
        # Signed in through an identity provider without a second factor: sign in again.
        logout(request)
        return redirect_to_login(request.get_full_path())
    form = KeyExportForm(
        request.POST if request.method == "POST" else None,
        user=request.user,
        needs_password=stale and can_reauthenticate_with_password(request),
        needs_code=needs_code,
    )
    if request.method == "POST" and version.private_key_id and form.is_valid():
        data = form.cleaned_data
        try:
            if needs_code:
                mfa.step_up(request, data["otp_token"], "key export", certificate)
            exported = exporting.export_key(
                request.user,
                version,
                data["format"],
                reason=data["reason"],
                passphrase=data["passphrase"],
            )
        except mfa.MfaError as exc:
            form.add_error("otp_token", str(exc))
        except ExportError as exc:
            form.add_error(None, str(exc))
        else:
            mark_authenticated(request)
            return _attachment(exported)
    if form.wrong_password and _wrong_password(request, certificate, version, form):
        logout(request)
        return redirect_to_login(request.get_full_path())
    context = {"cert": certificate, "version": version, "form": form, "formats": KEY_FORMATS}
    status = 400 if request.method == "POST" else 200
    return render(request, "inventory/key_export.html", context, status=status)


def _wrong_password(request, certificate, version, form) -> bool:
    """Audit a wrong re-entered password; True when the session has had too many."""
    record(
        request.user,
        "certificate.export_key_denied",
        certificate,
        reason=form.data.get("reason", "")[:500],
        why="wrong password",
        format=form.data.get("format", "")[:20],
        sha256=version.sha256,
    )
    return note_failure(request)


def _version(certificate: Certificate, request: HttpRequest) -> CertificateVersion:
    version = exporting.version_of(certificate, request.GET.get("version"))
    if version is None:
        raise Http404("This certificate has no such version.")
    return version


def _attachment(exported: ExportFile) -> HttpResponse:
    return exports.attachment(exported.content, exported.content_type, exported.filename)


urlpatterns = [
    path("<int:pk>/download/<str:fmt>/", certificate_download, name="certificate-download"),
    path("<int:pk>/export-key/", key_export, name="key-export"),
]
