"""Per-user preferences: the default project, and projects whose reminder digests to skip."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import path
from django.views.decorators.http import require_http_methods

from certconsole.access.current import SESSION_KEY, select_project, user_projects
from certconsole.access.models import UserPreference


class PreferenceForm(forms.Form):
    default_project = forms.ChoiceField(
        label="Default project",
        required=False,
        help_text="The project pages open with after you sign in.",
    )
    digest_opt_out = forms.MultipleChoiceField(
        label="No reminder digests from",
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="You still get reminders for certificates whose owner is your address.",
    )

    def __init__(self, *args, projects, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(p.slug, p.name) for p in projects]
        self.fields["default_project"].choices = [("", "The first of my projects"), *choices]
        self.fields["digest_opt_out"].choices = choices


def preference_for(user) -> UserPreference:
    """The user's preferences, or unsaved defaults."""
    return UserPreference.objects.filter(user=user).first() or UserPreference(user=user)


def apply_default_project(request) -> None:
    """Select the user's default project unless they already chose one in this session."""
    if SESSION_KEY in request.session:
        return
    preference = UserPreference.objects.filter(user=request.user).only("default_project").first()
    if preference is None or preference.default_project_id is None:
        return
    for project in user_projects(request.user):
        if project.pk == preference.default_project_id:
            select_project(request, project)


@require_http_methods(["GET", "POST"])
@login_required
def preferences(request: HttpRequest) -> HttpResponse:
    projects = user_projects(request.user)
    preference = preference_for(request.user)
    by_slug = {p.slug: p for p in projects}
    initial = {
        "default_project": preference.default_project.slug if preference.default_project else "",
        "digest_opt_out": [p.slug for p in preference.digest_opt_out.all()]
        if preference.pk
        else [],
    }
    form = PreferenceForm(request.POST or None, initial=initial, projects=projects)
    if request.method == "POST" and form.is_valid():
        preference.default_project = by_slug.get(form.cleaned_data["default_project"])
        preference.save()
        preference.digest_opt_out.set([by_slug[s] for s in form.cleaned_data["digest_opt_out"]])
        if preference.default_project:
            select_project(request, preference.default_project)
        messages.success(request, "Preferences saved.")
        return redirect("access:preferences")
    status = 400 if request.method == "POST" else 200
    return render(request, "access/preferences.html", {"form": form}, status=status)


urlpatterns = [path("me/preferences/", preferences, name="preferences")]
