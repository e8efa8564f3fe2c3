"""Dashboard forms: validation only; the views call services and model verbs."""

from __future__ import annotations

import json

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm
from django.core.validators import validate_email

from lib import jsonsafe
from lib.http_headers import validate_headers
from notifications import services as notify
from notifications.models import SpaceChannels
from orgs.models import Membership, Organization, normalize_email
from spaces import scopes
from spaces.models import Space

User = get_user_model()


class SignupForm(UserCreationForm):
    """The username is a public handle: "already taken" is said. The email is not checked against
    other accounts, so signing up never tells whether an address has an account already (there
    is no email verification either: see docs/security.md, Organization membership)."""

    email = forms.EmailField(
        required=True,
        help_text="Invitations sent to this address reach your account. Other users see it "
        "only in organizations you join.",
    )

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username", "email")


class OrganizationForm(forms.ModelForm):
    class Meta:
        model = Organization
        fields = ["name"]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the organization a name.")
        return name


class InviteForm(forms.Form):
    """Whom to invite, by username or email. What it answers must not depend on whether an
    account exists: the only refusals are about the organization's own members and invitations,
    which the managers using this form see anyway."""

    invitee = forms.CharField(label="Username or email", max_length=254)
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER)

    def __init__(self, *args, organization: Organization, can_grant_owner: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.organization = organization
        if not can_grant_owner:
            self.fields["role"].choices = [
                c for c in Membership.Role.choices if c[0] != Membership.Role.OWNER
            ]

    def clean_invitee(self) -> dict:
        """{"invitee": as shown, "email": for an invitation by email, "user": the account of an
        invitation by username, or None (no such account: the invitation just expires)}."""
        value = self.cleaned_data["invitee"].strip()
        org = self.organization
        try:
            validate_email(value)
        except forms.ValidationError:
            by_email = False
        else:
            by_email = True
        if by_email:
            email = normalize_email(value)
            # Members' emails are on the members page already: saying so leaks nothing.
            member = org.memberships.filter(user__email__iexact=email).exists()
            pending = org.invitations.open().filter(email=email).exists()
            target = {"invitee": email, "email": email, "user": None}
        else:
            member = org.memberships.filter(user__username=value).exists()
            pending = org.invitations.open().filter(email="", invitee=value).exists()
            target = {
                "invitee": value,
                "email": "",
                "user": User.objects.filter(username=value).first(),
            }
        if member:
            raise forms.ValidationError(f"{target['invitee']} is already a member.")
        if pending:
            raise forms.ValidationError(
                f"{target['invitee']} already has a pending invitation (revoke it to send another)."
            )
        return target


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
        # Reported beside any error of the name: every problem of the form at once.
        if not chosen and "scopes" not in self.errors:
            self.add_error(None, "Pick at least one scope (or the Worker preset).")
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
        choices=SpaceChannels.SlackEvent.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
    )

    # The URL rules (scheme, no private addresses, ...) are the notification service's; asked
    # here too so a bad URL is reported with the form's other errors, not after them.
    def clean_slack_webhook_url(self) -> str:
        url = self.cleaned_data["slack_webhook_url"].strip()
        if problems := notify.validate_slack(url, None).get("slack_webhook_url"):
            raise forms.ValidationError(problems)
        return url


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
        url = self.cleaned_data["push_url"].strip()
        if problems := notify.validate_push(url, None, None).get("push_url"):
            raise forms.ValidationError(problems)
        return url

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


# --- Recurring schedules and flow control ------------------------------------------------------

# Form field -> key in the API's job template (POST /spaces/{spaceId}/jobs body).
SCHEDULE_JOB_FIELDS = {
    "job_name": "name",
    "payload": "payload",
    "max_retries": "maxRetries",
    "timeout_seconds": "timeoutSeconds",
    "priority": "priority",
}


class ScheduleForm(forms.Form):
    """A schedule as the dashboard edits it; validated by the API's own serializer, so a form
    accepts exactly what POST /spaces/{spaceId}/schedules accepts."""

    name = forms.CharField(
        max_length=100, help_text="Letters, digits and . _ : - (unique in the space)."
    )
    cron = forms.CharField(
        max_length=100,
        help_text="Five fields (minute hour day month weekday), e.g. <code>*/15 * * * *</code>, "
        "or an alias: <code>@hourly</code>, <code>@daily</code>, <code>@weekly</code>, "
        "<code>@monthly</code>, <code>@yearly</code>.",
    )
    timezone = forms.CharField(
        label="Time zone",
        max_length=64,
        initial="UTC",
        help_text="An IANA name such as Europe/Berlin; ticks follow its wall clock.",
    )
    job_name = forms.CharField(label="Job name", max_length=200)
    payload = forms.CharField(
        label="Payload (JSON)",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": '{"report": "daily"}'}),
        help_text="Empty means no payload.",
    )
    max_retries = forms.IntegerField(label="maxRetries", initial=3)
    timeout_seconds = forms.IntegerField(label="timeoutSeconds", initial=300)
    priority = forms.IntegerField(initial=0)
    overlap = forms.ChoiceField(
        choices=[("allow", "Allow overlapping runs"), ("skip", "Skip while the last job runs")],
        initial="allow",
        help_text="Skip: a tick creates no job while the previous one is still unfinished.",
    )
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args, space: Space, instance=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.space = space
        self.instance = instance

    @classmethod
    def initial_for(cls, schedule) -> dict:
        template = schedule.job_template or {}
        payload = template.get("payload")
        return {
            "name": schedule.name,
            "cron": schedule.cron,
            "timezone": schedule.timezone,
            "job_name": template.get("name", ""),
            "payload": "" if payload is None else json.dumps(payload, indent=2),
            "max_retries": template.get("maxRetries", 3),
            "timeout_seconds": template.get("timeoutSeconds", 300),
            "priority": template.get("priority", 0),
            "overlap": schedule.overlap,
            "enabled": schedule.enabled,
        }

    def clean_payload(self):
        text = self.cleaned_data["payload"].strip()
        if not text:
            return None
        try:
            return jsonsafe.loads(text)
        except jsonsafe.UnsafeJSON as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None

    def clean(self):
        # Every field error at once: the API's rules run on the fields that passed the form's
        # own, and report nothing more for a field that already has an error.
        data = super().clean()
        from schedules.api.serializers import ScheduleWriteSerializer

        # Keys the form does not show (backoff, callbacks) survive an edit unchanged.
        job = dict(self.instance.job_template or {}) if self.instance is not None else {}
        for field, key in SCHEDULE_JOB_FIELDS.items():
            if field in data:
                job[key] = data[field]
        if job.get("payload") is None:
            job.pop("payload", None)
        body = {key: data[key] for key in ("name", "cron", "enabled", "overlap") if key in data}
        if "timezone" in data:
            body["timezone"] = data["timezone"].strip()
        body["job"] = job
        serializer = ScheduleWriteSerializer(data=body)
        if not serializer.is_valid():
            self._add_api_errors(serializer.errors)
            return data
        if self.errors:
            return data
        data["values"] = dict(serializer.validated_data)
        taken = self.space.schedules.filter(name=data["values"]["name"])
        if self.instance is not None:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            self.add_error("name", "This space already has a schedule with this name.")
        return data

    def _add_api_errors(self, errors: dict) -> None:
        by_key = {key: field for field, key in SCHEDULE_JOB_FIELDS.items()}
        for key, problems in errors.items():
            if key == "job" and isinstance(problems, dict):
                for job_key, job_problems in problems.items():
                    field = by_key.get(job_key)
                    if field in self.errors:
                        continue
                    if field is None:
                        job_problems = [f"{job_key}: {p}" for p in _flat(job_problems)]
                    self.add_error(field, _flat(job_problems))
            elif key in self.fields:
                if key not in self.errors:
                    self.add_error(key, _flat(problems))
            else:
                self.add_error(None, _flat(problems))


def _flat(problems) -> list[str]:
    """DRF error details (strings, lists, nested dicts) as plain messages."""
    if isinstance(problems, dict):
        return [f"{k}: {m}" for k, v in problems.items() for m in _flat(v)]
    if isinstance(problems, list | tuple):
        return [m for p in problems for m in _flat(p)]
    return [str(problems)]


class LimitForm(forms.Form):
    """A flow-control limit of one job name, by the rules of PUT /spaces/{spaceId}/limits/{name}."""

    name = forms.CharField(label="Job name", max_length=200)
    concurrency = forms.IntegerField(
        min_value=1,
        max_value=100_000,
        required=False,
        help_text="Most jobs of this name delivered or running at once; empty: no cap.",
    )
    rate = forms.FloatField(
        min_value=0.001,
        max_value=100_000,
        required=False,
        help_text="Most jobs handed out per second (0.5 = one every 2 s); empty: no cap.",
    )
    # For each distinct concurrencyKey of the name (docs/workflows.md, "Concurrency per key").
    key_concurrency = forms.IntegerField(
        label="Concurrency per key",
        min_value=1,
        max_value=100_000,
        required=False,
        help_text="Most jobs of one concurrencyKey delivered or running at once; empty: no cap.",
    )
    key_rate = forms.FloatField(
        label="Rate per key",
        min_value=0.001,
        max_value=100_000,
        required=False,
        help_text="Most jobs of one concurrencyKey handed out per second; empty: no cap.",
    )

    LIMITS = ("concurrency", "rate", "key_concurrency", "key_rate")

    def clean(self):
        data = super().clean()
        # Checked whatever else is wrong, so every problem shows at once. A field that failed
        # its own check is not "empty".
        unset = [f for f in self.LIMITS if data.get(f) is None and f not in self.errors]
        if len(unset) == len(self.LIMITS):
            self.add_error(
                None,
                "Set a concurrency, a rate or both, for the name or per key "
                "(Remove takes a limit away).",
            )
        return data
