from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self) -> None:
        from jobs import retention as job_retention
        from jobs.events import event_committed
        from jobs.scheduler import register_periodic
        from spaces import auth
        from spaces.services import resume_hooks

        # tasks registers the Celery tasks the outbox sends by name (outbox.DELIVER_TASK).
        from . import breaker, outbox, retention, tasks  # noqa: F401

        # Every committed job event passes through the outbox planner (after commit, in the
        # process that wrote it); dispatch_uid keeps a second ready() from doubling it.
        event_committed.connect(outbox.on_event_committed, dispatch_uid="notifications.outbox")
        if outbox.wake_on_resume not in resume_hooks:
            resume_hooks.append(outbox.wake_on_resume)
        # The planner reads the channels of a space an API key just loaded: with the key.
        if "channels" not in auth.space_related:
            auth.space_related.append("channels")
        # Rows the broker never took (it was down) or whose message was lost.
        register_periodic("notifications.flush_outbox", outbox.flush_outbox, every=5.0)
        register_periodic("notifications.prune_breakers", breaker.prune, every=3600.0)
        # Job retention: deliveries lose the link to a deleted job, then go after their own
        # period (the longer of the space's two).
        job_retention.jobs_pruned.connect(
            retention.detach_deliveries, dispatch_uid="notifications.detach_deliveries"
        )
        job_retention.register_pruner("deliveries", retention.prune_deliveries)
