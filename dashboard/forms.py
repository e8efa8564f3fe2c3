"""Dashboard forms: validation only; the views call services and model verbs."""

from __future__ import annotations

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm
from django.db.models import Q

from lib.http_headers import validate_headers
from orgs.models import Membership, Organization
from spaces import scopes
from spaces.models import Space

User = get_user_model()


class SignupForm(UserCreationForm):
    email = forms.EmailField(required=True, help_text="Used by teammates to add you.")

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip()
        if User.objects.filter(email__iexact=email).exists():
            raise forms.ValidationError("An account with this email already exists.")
        return email


class OrganizationForm(forms.ModelForm):
    class Meta:
        model = Organization
        fields = ["name"]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the organization a name.")
        return name


class AddMemberForm(forms.Form):
    user = forms.CharField(label="Username or email", max_length=254)
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER)

    def __init__(self, *args, organization: Organization, can_grant_owner: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.organization = organization
        if not can_grant_owner:
            self.fields["role"].choices = [
                c for c in Membership.Role.choices if c[0] != Membership.Role.OWNER
            ]

    def clean_user(self):
        value = self.cleaned_data["user"].strip()
        matches = list(User.objects.filter(Q(username=value) | Q(email__iexact=value))[:2])
        if not matches:
            raise forms.ValidationError("No user with this username or email.")
        if len(matches) > 1:
            raise forms.ValidationError("Several users share this email: use the username.")
        user = matches[0]
        if self.organization.memberships.filter(user=user).exists():
            raise forms.ValidationError(f"{user.username} is already a member.")
        return user


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)


class SpaceForm(forms.Form):
    name = forms.CharField(max_length=100)

    def __init__(self, *args, organization: Organization, instance: Space | None = None, **kw):
        super().__init__(*args, **kw)
        self.organization = organization
        self.instance = instance

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the space a name.")
        taken = Space.objects.filter(organization=self.organization, name=name)
        if self.instance is not None:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            raise forms.ValidationError("This organization already has a space with this name.")
        return name


class GeneralSettingsForm(SpaceForm):
    retention_completed_days = forms.IntegerField(
        min_value=1, max_value=3650, label="Keep completed jobs (days)"
    )
    retention_failed_days = forms.IntegerField(
        min_value=1, max_value=3650, label="Keep dead and killed jobs (days)"
    )


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100)
    scopes = forms.MultipleChoiceField(
        choices=scopes.CHOICES, widget=forms.CheckboxSelectMultiple, required=False
    )
    worker_preset = forms.BooleanField(
        required=False,
        label="Worker preset",
        help_text="jobs:worker plus jobs:read:progress: what a worker needs.",
    )

    def clean(self):
        data = super().clean()
        chosen = set(data.get("scopes") or [])
        if data.get("worker_preset"):
            chosen |= set(scopes.WORKER_PRESET)
        if not chosen and not self.errors:
            raise forms.ValidationError("Pick at least one scope (or the Worker preset).")
        data["scope_list"] = sorted(chosen)
        return data


class SlackForm(forms.Form):
    slack_webhook_url = forms.CharField(
        label="Webhook URL",
        max_length=500,
        required=False,
        help_text="Leave empty to turn Slack off.",
    )
    slack_events = forms.MultipleChoiceField(
        label="Events",
        choices=Space.SlackEvent.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )

    # The URL rules (scheme, no private addresses, ...) are the notification service's.
    def clean_slack_webhook_url(self) -> str:
        return self.cleaned_data["slack_webhook_url"].strip()


def parse_header_lines(text: str) -> tuple[dict[str, str], list[str]]:
    """`Name: value` lines into a dict, plus errors for lines that are not headers."""
    headers: dict[str, str] = {}
    errors: list[str] = []
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            errors.append(f"Line {n}: write headers as 'Name: value'.")
            continue
        headers[name.strip()] = value.strip()
    return headers, errors


class PushForm(forms.Form):
    push_url = forms.CharField(
        label="Push URL", max_length=500, required=False, help_text="Leave empty to turn it off."
    )
    push_headers = forms.CharField(
        label="Headers",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Authorization: Bearer ..."}),
        help_text="One per line, as 'Name: value'.",
    )
    push_names = forms.CharField(
        label="Only these job names",
        required=False,
        max_length=5000,
        help_text="Comma or newline separated; empty means every job.",
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    def clean_push_url(self) -> str:
        return self.cleaned_data["push_url"].strip()

    def clean_push_headers(self) -> dict[str, str]:
        headers, errors = parse_header_lines(self.cleaned_data["push_headers"])
        errors += validate_headers(headers)
        if errors:
            raise forms.ValidationError(errors)
        return headers

    def clean_push_names(self) -> list[str]:
        raw = self.cleaned_data["push_names"].replace("\n", ",")
        names = []
        for part in raw.split(","):
            name = part.strip()
            if name and name not in names:
                if len(name) > 200:
                    raise forms.ValidationError("Job names are at most 200 characters.")
                names.append(name)
        return names


def headers_as_text(headers: dict[str, str]) -> str:
    return "\n".join(f"{k}: {v}" for k, v in (headers or {}).items())


class BulkForm(forms.Form):
    """`op` is "<action>:<scope>": kill or retry, on the selected ids or on every match."""

    op = forms.ChoiceField(
        choices=[
            ("kill:selected", "Kill selected"),
            ("retry:selected", "Retry selected"),
            ("kill:matching", "Kill all matching"),
            ("retry:matching", "Retry all matching"),
        ]
    )
    ids = forms.CharField(required=False)
    reason = forms.CharField(required=False, max_length=500)

    MAX_SELECTED = 1000

    def clean_ids(self) -> list[str]:
        return [i for i in self.data.getlist("ids") if i][: self.MAX_SELECTED]

    def clean(self):
        data = super().clean()
        if "op" in data:
            data["action"], data["scope"] = data["op"].split(":")
        return data
