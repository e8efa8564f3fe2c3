"""HTTP push (worker wake): POST `job.pending` to the space's push URL, signed.

Best effort by design: one quick try and at most one retry, never any effect on the job. The
body is signed with HMAC-SHA256 under the space's push secret (header X-Jobyard-Signature,
`sha256=<hex>`), so a receiver can check it came from this service; docs/notifications.md has
a verification example.
"""

from __future__ import annotations

from django.utils import timezone

from ..models import NotificationDelivery, SpaceChannels
from .base import EVENT_HEADER, SIGNATURE_HEADER, Message, Transport, TransportError, sign

PUSH_EVENT = "job.pending"


def name_allowed(channels: SpaceChannels, name: str) -> bool:
    """The space's job-name filter: an empty list lets every name through."""
    return not channels.push_names or name in channels.push_names


class PushTransport(Transport):
    channel = NotificationDelivery.Channel.PUSH

    def is_noop(self, message: Message) -> bool:
        if not self.channels.push_url:
            return True
        if message.is_test:
            return False
        # Pushes are held while the space is paused; resuming wakes the workers instead.
        if self.space.paused_at is not None or message.job is None:
            return True
        return not name_allowed(self.channels, message.job.name)

    def url(self, message: Message) -> str:
        return self.channels.push_url

    def payload(self, message: Message) -> dict:
        if message.is_test:
            return {
                "type": "test",
                "spaceId": self.space.public_id,
                "timestamp": timezone.now(),
                "message": "Test push from Jobyard: the receiver and signature work.",
            }
        job = message.job
        assert job is not None
        when = message.job_event.created_at if message.job_event is not None else timezone.now()
        return {
            "type": PUSH_EVENT,
            "jobId": job.pk,
            "spaceId": self.space.public_id,
            "name": job.name,
            "timestamp": when,
        }

    def user_headers(self, message: Message) -> dict[str, str]:
        return dict(self.channels.push_headers or {})

    def system_headers(self, message: Message, body: bytes) -> dict[str, str]:
        return {
            SIGNATURE_HEADER: sign(body, self.channels.push_secret),
            EVENT_HEADER: "test" if message.is_test else PUSH_EVENT,
        }

    def after_attempt(
        self, message: Message, delivery: NotificationDelivery, error: TransportError | None
    ) -> None:
        if error is None and self.channels.push_last_error:
            SpaceChannels.objects.filter(pk=self.space.pk, push_url=self.url(message)).update(
                push_last_error=""
            )

    def on_given_up(self, message: Message, error: TransportError) -> None:
        SpaceChannels.objects.filter(pk=self.space.pk, push_url=self.url(message)).update(
            push_last_error=error.message[:1000]
        )
