"""Job callbacks: POST the job's outcome to its callbackUrl on completed, dead and killed.

Up to 5 attempts with exponential backoff; success is a 2xx. Every attempt is also a job
event, `callback_sent` or `callback_failed`, so the job's timeline shows it. Its data:
`url` (query values redacted), `statusCode` (null without an answer), `retryAttempt` (from 0),
`willRetry`, `responseBody` (the first 1 KiB of the answer) and, when it failed, `error`. The body is signed like a push (X-Jobyard-Signature, the space's push
secret) so receivers can verify it with the same code.
"""

from __future__ import annotations

from jobs import events
from jobs.models import Job
from jobs.queries import attempt
from lib.outbound import redacted_url

from .. import conf
from ..models import NotificationDelivery
from .base import EVENT_HEADER, SIGNATURE_HEADER, Message, Transport, TransportError, sign

CALLBACK_STATUSES = ("completed", "dead", "killed")


class CallbackTransport(Transport):
    channel = NotificationDelivery.Channel.CALLBACK

    def is_noop(self, message: Message) -> bool:
        return message.job is None or not message.job.callback_url

    def url(self, message: Message) -> str:
        assert message.job is not None
        return message.job.callback_url

    def payload(self, message: Message) -> dict:
        job = message.job
        assert job is not None
        event = message.job_event
        data = event.data if event is not None and isinstance(event.data, dict) else {}
        status = message.event
        if status == "completed":
            result = data.get("result", job.result)
        elif status == "dead":
            result = {"error": data.get("error", job.last_error or None)}
        else:
            result = {"reason": data.get("reason")}
        return {
            "jobId": job.pk,
            "spaceId": self.space.public_id,
            "name": job.name,
            "status": status,
            "attemptNumber": attempt(
                event.attempt_number if event is not None else job.attempt_number
            ),
            "result": result,
            "timestamp": event.created_at if event is not None else job.updated_at,
        }

    def user_headers(self, message: Message) -> dict[str, str]:
        assert message.job is not None
        return dict(message.job.callback_headers or {})

    def system_headers(self, message: Message, body: bytes) -> dict[str, str]:
        return {
            SIGNATURE_HEADER: sign(body, self.channels.push_secret),
            EVENT_HEADER: f"job.{message.event}",
        }

    def after_attempt(
        self, message: Message, delivery: NotificationDelivery, error: TransportError | None
    ) -> None:
        job = message.job
        assert job is not None
        will_retry = (
            error is not None
            and not error.permanent
            and message.attempt < conf.policy(self.channel).max_attempts
        )
        data = {
            "url": redacted_url(job.callback_url),
            "statusCode": delivery.status_code,
            "retryAttempt": message.attempt - 1,
            "willRetry": will_retry,
            "responseBody": delivery.response_body,
        }
        if error is not None:
            data["error"] = delivery.error[:500]
        try:
            job.refresh_from_db(fields=["status", "attempt_number"])
        except Job.DoesNotExist:
            return  # deleted meanwhile (retention); the delivery row remains
        # Not a transition: the job's status stays as it is (previous_status None).
        events.record(job, "callback_failed" if error else "callback_sent", data)
