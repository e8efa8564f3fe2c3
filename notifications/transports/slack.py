"""Slack incoming webhooks: one message per chosen job event, with a link to the job page.

Error handling follows Slack's documentation of incoming-webhook errors
(https://api.slack.com/messaging/webhooks#handling_errors): 400 `invalid_payload` /
`user_not_found`, 403 `action_prohibited` / `invalid_token`, 404 `channel_not_found` /
`no_service` / `no_team`, 410 `channel_is_archived` all mean the webhook will never work again
as configured, so the channel is disabled (SpaceChannels.slack_disabled_at) until its URL is
saved again; 429 (with Retry-After, https://api.slack.com/apis/rate-limits) and 5xx are retried.
"""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jobs.models import JobEvent
from spaces.models import Space

from .. import http
from ..models import NotificationDelivery, SpaceChannels
from .base import Message, Transport, TransportError, describe_status, parse_retry_after

EVENTS = [choice.value for choice in SpaceChannels.SlackEvent]

_TITLES = {
    "created": (":inbox_tray:", "Job created"),
    "started": (":arrow_forward:", "Job started"),
    "completed": (":white_check_mark:", "Job completed"),
    "failed": (":warning:", "Job attempt failed"),
    "dead": (":skull:", "Job is dead"),
    "killed": (":no_entry:", "Job killed"),
    "test": (":wave:", "Test message"),
}
MAX_ERROR_CHARS = 1500


def slack_events_for(event: JobEvent) -> list[str]:
    """The Slack events a job event stands for, in sending order (see the contract).

    A failed attempt is `retried` (attempts left) or `dead` with an error: both are `failed`,
    so a job that dies sends `failed` then `dead`.
    """
    if event.type in ("created", "started", "completed", "killed"):
        return [event.type]
    if event.type == "retried":
        return ["failed"]
    if event.type == "dead":
        data = event.data if isinstance(event.data, dict) else {}
        return ["failed", "dead"] if data.get("error") is not None else ["dead"]
    return []


def escape(text: str) -> str:
    """Slack mrkdwn escaping (https://api.slack.com/reference/surfaces/formatting#escaping)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def job_link(space: Space, job_id: str) -> str:
    return f"{settings.PUBLIC_URL}/spaces/{space.public_id}/jobs/{job_id}"


class SlackTransport(Transport):
    channel = NotificationDelivery.Channel.SLACK

    def is_noop(self, message: Message) -> bool:
        channels = self.channels
        if not channels.slack_webhook_url:
            return True
        if message.is_test:
            return False
        return channels.slack_disabled_at is not None or message.event not in channels.slack_events

    def url(self, message: Message) -> str:
        return self.channels.slack_webhook_url

    def payload(self, message: Message) -> dict:
        space = self.space
        emoji, title = _TITLES[message.event]
        space_label = escape(f"{space.organization.slug}/{space.name}")
        if message.is_test:
            text = f"{emoji} {title} from Jobyard for space {space_label}"
            return {"text": text}

        job = message.job
        assert job is not None
        event = message.job_event
        data = event.data if event is not None and isinstance(event.data, dict) else {}
        status = event.status if event is not None else job.status
        # Counted from 1 for people ("Attempt 1 of 4"), as the columns store it.
        attempt = event.attempt_number if event is not None else job.attempt_number
        if event is not None and event.type == "retried":
            # The event row holds the next attempt's number; the one that failed is before it.
            attempt -= 1
        total = job.max_retries + 1
        link = job_link(space, job.pk)
        name = escape(job.name)
        text = f"{emoji} {title}: {name} in {space_label}"

        lines = [
            f"*<{link}|{name}>*  `{job.pk}`",
            f"*Space:* {space_label}   *Status:* {status}   *Attempt:* {attempt} of {total}",
        ]
        if message.event == "failed" and event is not None and event.type == "retried":
            lines.append(f"Retrying: attempt {attempt + 1} of {total} is queued.")
        detail = ""
        if message.event in ("failed", "dead") and data.get("error") is not None:
            detail = str(data["error"])
        elif message.event == "killed" and data.get("reason"):
            detail = str(data["reason"])
        blocks: list[dict] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"{emoji} *{title}*"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}},
        ]
        if detail:
            label = "Reason" if message.event == "killed" else "Error"
            detail = escape(detail[:MAX_ERROR_CHARS]).replace("```", "'''")
            blocks.append(
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": f"*{label}:*\n```{detail}```"},
                }
            )
        when = event.created_at if event is not None else timezone.now()
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"<!date^{int(when.timestamp())}^{{date_short_pretty}} {{time_secs}}|{when.isoformat()}>",
                    }
                ],
            }
        )
        fallback = f"{text} ({status}, attempt {attempt} of {total})"
        if detail:
            fallback += f": {escape(str(data.get('error') or data.get('reason'))[:200])}"
        return {"text": fallback, "blocks": blocks}

    def raise_for_response(self, response: http.Response) -> None:
        if response.ok:
            return
        status = response.status
        if status == 429 or status >= 500:
            raise TransportError(
                describe_status(response),
                retry_after=parse_retry_after(response.headers.get("retry-after")),
                status_code=status,
            )
        # 3xx (never followed) and every other 4xx: the webhook is wrong or revoked.
        raise TransportError(describe_status(response), permanent=True, status_code=status)

    def after_attempt(
        self, message: Message, delivery: NotificationDelivery, error: TransportError | None
    ) -> None:
        if error is None and self.channels.slack_last_error and not message.is_test:
            # Working again after an exhausted transient failure: clear the stale message.
            self._update_while_url_is(self.url(message), enabled_only=True, slack_last_error="")

    def on_given_up(self, message: Message, error: TransportError) -> None:
        if message.is_test:
            return
        fields: dict = {"slack_last_error": error.message[:1000]}
        if error.permanent:
            fields["slack_disabled_at"] = timezone.now()
        # Only while the URL is still the one that failed: a URL saved meanwhile starts clean.
        self._update_while_url_is(self.url(message), **fields)
        for name, value in fields.items():
            setattr(self.channels, name, value)

    def _update_while_url_is(self, url: str, *, enabled_only: bool = False, **fields) -> bool:
        """Update the space's Slack fields only while URL is still its webhook URL. The URL is
        encrypted at rest (no equality lookup), so it is compared under the row's lock."""
        with transaction.atomic():
            rows = SpaceChannels.objects.select_for_update().filter(pk=self.space.pk)
            if enabled_only:
                rows = rows.filter(slack_disabled_at__isnull=True)
            current = rows.values_list("slack_webhook_url", flat=True).first()
            if current is None or current != url:
                return False
            SpaceChannels.objects.filter(pk=self.space.pk).update(**fields)
            return True
