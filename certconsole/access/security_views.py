"""Sign-in and account security pages: two-step sign-in, second factors, sessions, mappings."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from certconsole.access import mfa, sessions
from certconsole.access.current import user_projects
from certconsole.access.ldap_auth import ERROR_ATTR as LDAP_ERROR
from certconsole.access.models import (
    GroupMapping,
    IdentitySource,
    MfaPolicy,
    Project,
    TotpDevice,
    UserSession,
)
from certconsole.access.permissions import get_object_for_user
from certconsole.access.roles import Role

LOCAL_BACKEND = "django.contrib.auth.backends.ModelBackend"


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=32,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "autocapitalize": "off", "autofocus": True}
        ),
        help_text="The 6 digits from your authenticator app, or one of your recovery codes.",
    )


class GroupMappingForm(forms.Form):
    project = forms.ModelChoiceField(queryset=Project.objects.none(), to_field_name="slug")
    source = forms.ChoiceField(choices=IdentitySource.choices)
    group = forms.CharField(max_length=255, help_text="Exactly as the identity provider names it.")
    role = forms.ChoiceField(choices=Role.choices)

    def __init__(self, *args, projects, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = projects


class MfaPolicyForm(forms.Form):
    required_roles = forms.MultipleChoiceField(
        choices=Role.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Roles that need a second factor",
    )
    reason = forms.CharField(max_length=500, required=False)


# --- signing in ----------------------------------------------------------------------------


class LoginView(auth_views.LoginView):
    """Django's sign-in page, with the second step, SSO, and local accounts that can be off."""

    def form_valid(self, form):
        user = form.get_user()
        local = user.backend == LOCAL_BACKEND
        if local and not settings.LOCAL_LOGIN_ENABLED and not user.is_superuser:
            form.add_error(None, "Password sign-in is turned off here: use single sign-on.")
            return self.form_invalid(form)
        return mfa.begin_login(self.request, user, user.backend, self.get_success_url())

    def form_invalid(self, form):
        error = getattr(self.request, LDAP_ERROR, None)
        if error:
            form.errors.pop("__all__", None)
            form.add_error(None, error)
        return super().form_invalid(form)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["sso_enabled"] = settings.OIDC_ENABLED
        context["local_login_enabled"] = settings.LOCAL_LOGIN_ENABLED
        return context


@sensitive_post_parameters("code")
@never_cache
@require_http_methods(["GET", "POST"])
def mfa_verify(request: HttpRequest) -> HttpResponse:
    user = mfa.pending_user(request)
    if user is None:
        messages.error(request, "Your sign-in expired: please sign in again.")
        return redirect("login")
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            next_url = mfa.finish_login(request, user, form.cleaned_data["code"])
        except mfa.MfaError as exc:
            if mfa.pending_user(request) is None or mfa.PENDING_KEY not in request.session:
                messages.error(request, "Too many wrong codes: please sign in again.")
                return redirect("login")
            form.add_error("code", str(exc))
        else:
            return redirect(next_url)
    status = 400 if form.is_bound else 200
    context = {"form": form, "pending_username": user.get_username()}
    return render(request, "registration/mfa_verify.html", context, status=status)


@sensitive_post_parameters("code")
@never_cache
@require_http_methods(["GET", "POST"])
@login_required
def mfa_confirm(request: HttpRequest) -> HttpResponse:
    """Prove the second factor again before a sensitive act (role changes)."""
    next_url = _safe_next(request)
    if not mfa.has_second_factor(request.user):
        return redirect(next_url)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            mfa.step_up(request, form.cleaned_data["code"], purpose="confirm")
        except mfa.MfaError as exc:
            form.add_error("code", str(exc))
        else:
            return redirect(next_url)
    status = 400 if form.is_bound else 200
    context = {"form": form, "next": next_url}
    return render(request, "registration/mfa_confirm.html", context, status=status)


def step_up_redirect(request: HttpRequest, next_url: str) -> HttpResponse:
    """Send the user to confirm their second factor, then back to next_url."""
    messages.info(request, "Confirm it is you with your second factor, then try again.")
    return redirect(f"{reverse('mfa-confirm')}?{urlencode({'next': next_url})}")


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or reverse("security")
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return reverse("security")
    return target


# --- the security page ---------------------------------------------------------------------


@require_GET
@login_required
def security(request: HttpRequest) -> HttpResponse:
    context = {
        "state": mfa.state_for(request.user),
        "sessions": sessions.active_sessions(request.user),
        "current_key": request.session.session_key,
        "can_map": _mapping_projects(request.user).exists(),
        "code_form": CodeForm() if mfa.needs_step_up(request) else None,
        "sso_user": not request.user.has_usable_password(),
    }
    return render(request, "access/security.html", context)


@sensitive_post_parameters("code")
@never_cache
@require_http_methods(["GET", "POST"])
@login_required
def mfa_enrol(request: HttpRequest) -> HttpResponse:
    device = mfa.pending_enrolment(request.user)
    if device is None or (request.method == "GET" and "restart" in request.GET):
        device = mfa.start_enrolment(request.user)
    form = CodeForm(request.POST or None)
    form.fields["code"].help_text = "The 6 digits the app shows now."
    if request.method == "POST" and form.is_valid():
        try:
            codes = mfa.confirm_enrolment(request, device, form.cleaned_data["code"])
        except mfa.MfaError as exc:
            form.add_error("code", str(exc))
        else:
            messages.success(request, "Your authenticator app is set up.")
            return render(request, "access/security_codes.html", {"codes": codes})
    context = {
        "form": form,
        "qr_svg": mfa.qr_svg(device),
        "secret": mfa.secret_base32(device),
        "uri": mfa.provisioning_uri(device),
    }
    return render(
        request, "access/security_enrol.html", context, status=400 if form.is_bound else 200
    )


@sensitive_post_parameters("code")
@require_POST
@login_required
def mfa_remove(request: HttpRequest, pk: int) -> HttpResponse:
    device = get_object_or_404(TotpDevice, pk=pk, user=request.user, confirmed=True)
    if not _stepped_up(request, "remove second factor"):
        return redirect("security")
    mfa.remove_device(request, device)
    messages.success(request, "The authenticator app was removed.")
    return redirect("security")


@sensitive_post_parameters("code")
@never_cache
@require_POST
@login_required
def recovery_codes_new(request: HttpRequest) -> HttpResponse:
    if not mfa.has_second_factor(request.user):
        messages.error(request, "Set up an authenticator app first.")
        return redirect("security")
    if not _stepped_up(request, "new recovery codes"):
        return redirect("security")
    codes = mfa.new_recovery_codes(request.user)
    return render(request, "access/security_codes.html", {"codes": codes})


def _stepped_up(request: HttpRequest, purpose: str) -> bool:
    """Fresh second factor, or a valid code in this POST; otherwise a message and False."""
    if not mfa.needs_step_up(request):
        return True
    try:
        mfa.step_up(request, request.POST.get("code", ""), purpose=purpose)
    except mfa.MfaError as exc:
        messages.error(request, str(exc))
        return False
    return True


@require_POST
@login_required
def session_end(request: HttpRequest, pk: int) -> HttpResponse:
    row = get_object_or_404(UserSession, pk=pk, user=request.user)
    current = row.session_key == request.session.session_key
    sessions.end_session(request.user, row)
    if current:
        logout(request)
        return redirect_to_login(reverse("security"))
    messages.success(request, "That session was signed out.")
    return redirect("security")


@require_POST
@login_required
def session_end_all(request: HttpRequest) -> HttpResponse:
    keep = request.POST.get("keep_current") == "1"
    count = sessions.end_all_sessions(request, keep_current=keep)
    if keep:
        messages.success(request, f"Signed out {count} other session(s).")
        return redirect("security")
    logout(request)
    messages.success(request, f"Signed out everywhere ({count} session(s)).")
    return redirect("login")


# --- group mappings and the MFA policy -----------------------------------------------------


def _mapping_projects(user):
    """Projects whose mappings the user may edit: where they manage members; all for superusers."""
    projects = Project.objects.filter(pk__in=[p.pk for p in user_projects(user)])
    if user.is_superuser:
        return projects
    return projects.filter(pk__in=[p.pk for p in projects if user.has_perm("member.manage", p)])


@require_http_methods(["GET", "POST"])
@login_required
def group_mappings(request: HttpRequest) -> HttpResponse:
    projects = _mapping_projects(request.user)
    if not projects.exists():
        raise PermissionDenied("Only ProjectAdmins and administrators edit group mappings.")
    form = GroupMappingForm(request.POST or None, projects=projects)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        GroupMapping.add(request.user, data["project"], data["source"], data["group"], data["role"])
        messages.success(
            request, f"Members of “{data['group']}” now get {Role(data['role']).label}."
        )
        return redirect("security-group-mappings")
    mappings = GroupMapping.objects.filter(project__in=projects).select_related("project")
    context = {"form": form, "mappings": mappings, "projects": projects}
    return render(
        request, "access/security_mappings.html", context, status=400 if form.is_bound else 200
    )


@require_POST
@login_required
def group_mapping_remove(request: HttpRequest, pk: int) -> HttpResponse:
    mapping = get_object_for_user(request, GroupMapping, "member.manage", pk=pk)
    mapping.remove(request.user)
    messages.success(request, f"The mapping of “{mapping.group}” was removed.")
    return redirect("security-group-mappings")


@require_http_methods(["GET", "POST"])
@login_required
def mfa_policy(request: HttpRequest, slug: str) -> HttpResponse:
    project = get_object_for_user(request, Project, "project.manage", slug=slug)
    policy = MfaPolicy.objects.filter(project=project).first() or MfaPolicy(project=project)
    form = MfaPolicyForm(request.POST or None, initial={"required_roles": policy.required_roles})
    if request.method == "POST" and form.is_valid():
        policy.set_roles(
            request.user, form.cleaned_data["required_roles"], form.cleaned_data["reason"]
        )
        mfa.refresh_withheld(request)
        messages.success(request, "The MFA policy was saved.")
        return redirect("security-mfa-policy", slug=project.slug)
    context = {"project": project, "form": form, "policy": policy}
    return render(request, "access/security_policy.html", context)
