from django import forms
from django.contrib.auth import get_user_model

from certconsole.access.models import Project
from certconsole.access.roles import Role


class ProjectForm(forms.ModelForm):
    class Meta:
        model = Project
        fields = ["slug", "name", "description"]
        help_texts = {
            "slug": "Short identifier used in commands and the API, e.g. “payments-prod”."
        }


class AddMemberForm(forms.Form):
    username = forms.CharField(max_length=150, help_text="An existing user's login name.")
    role = forms.ChoiceField(choices=Role.choices)
    reason = forms.CharField(max_length=500, required=False, help_text="Recorded in the audit log.")

    def clean_username(self):
        username = self.cleaned_data["username"].strip()
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise forms.ValidationError(f"No active user is called “{username}”.")
        self.user = user
        return username


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=500, required=False)


class SwitchProjectForm(forms.Form):
    project = forms.SlugField()
    next = forms.CharField(required=False)
